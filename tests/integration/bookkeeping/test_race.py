"""Several processes on one database at once: schema creation, claims, transitions, registration.

Real processes (multiprocessing, spawn), each with its own connection pool, released together by
a barrier so the race is real; on PostgreSQL this is what two hosts do.
"""

from __future__ import annotations

import multiprocessing
import queue
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from farmtools.bookkeeping import Bookkeeping, Event, FileState
from farmtools.bookkeeping import schema as bkschema
from tests.eventually import eventually
from tests.integration.bookkeeping import workers

# forkserver: clean processes (no inherited connections or threads), forked from a server that
# has SQLAlchemy and farmtools imported already, so a race starts in milliseconds, not seconds.
_CTX = multiprocessing.get_context("forkserver")
_CTX.set_forkserver_preload(["tests.integration.bookkeeping.workers"])
NPROC = 4


def _race(target: Callable[..., None], url: str, *args: Any) -> list[Any]:
    """Run ``target(url, barrier, queue, *args)`` in NPROC processes; their reports."""
    barrier = _CTX.Barrier(NPROC)
    out = _CTX.Queue()
    procs = [_CTX.Process(target=target, args=(url, barrier, out, *args)) for _ in range(NPROC)]
    for p in procs:
        p.start()
    results: list[Any] = []

    def reports() -> int:
        try:
            results.append(out.get(timeout=0.5))  # the wait between tries
        except queue.Empty:
            dead = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            assert not dead, f"a worker died with exit code {dead[0]}"
        return len(results)

    eventually(
        reports, 120, f"reports of the {NPROC} workers", until=lambda n: n >= NPROC, interval=0
    )
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    return results


def test_processes_opening_a_new_database_together(db_url: str) -> None:
    results = _race(workers.open_db, db_url)
    assert results == [("ok", bkschema.SCHEMA_VERSION)] * NPROC
    bk = Bookkeeping(db_url)
    assert bk.schema_version() == bkschema.SCHEMA_VERSION
    bk.close()


@pytest.mark.parametrize("limit", [1, 3])
def test_claims_racing_across_processes(db_url: str, limit: int) -> None:
    bk = Bookkeeping(db_url)
    names = [f"run1-seq{i}.dat" for i in range(60)]
    for i, n in enumerate(names):
        bk.register_file(n, source_path=f"/daq/{n}", run=1, seq=i, size=1, daq_write_time=None)

    results = _race(workers.claim_all, db_url, limit)

    assert [err for _, _, err in results] == [None] * NPROC
    claimed = Counter(n for _, got, _ in results for n in got)
    assert sorted(claimed) == sorted(names)  # every file claimed...
    assert max(claimed.values()) == 1  # ...by exactly one process
    by_worker = {n: w for w, got, _ in results for n in got}
    for n in names:
        rec = bk.get(n)
        assert rec is not None and rec.state == FileState.COPYING
        assert rec.claimed_by == by_worker[n]
        starts = [e for e in bk.story(n) if e.event == Event.COPY_STARTED]
        assert len(starts) == 1 and starts[0].details["worker"] == by_worker[n]  # type: ignore[index]
    bk.close()


def test_transitions_racing_across_processes(db_url: str) -> None:
    bk = Bookkeeping(db_url)
    names = [f"run2-seq{i}.dat" for i in range(40)]
    for i, n in enumerate(names):  # detected, copied, stored: the path ingest takes
        bk.register_file(n, source_path=n, run=2, seq=i, size=1, daq_write_time=None)
        assert bk.transition(n, FileState.DETECTED, FileState.COPYING, Event.COPY_STARTED)
        assert bk.transition(n, FileState.COPYING, FileState.STORED, Event.VERIFIED)
    results = _race(workers.transition_all, db_url, names)
    won = Counter(n for _, got, _ in results for n in got)
    assert sorted(won) == sorted(names) and max(won.values()) == 1
    for n in names:
        assert [e.event for e in bk.story(n)].count(Event.QUEUED) == 1
    bk.close()


def test_registering_the_same_files_from_several_processes(db_url: str) -> None:
    names = [f"run7-seq{i}.dat" for i in range(30)]
    results = _race(workers.register_all, db_url, names)
    assert [err for _, _, err in results] == [None] * NPROC
    bk = Bookkeeping(db_url)
    assert [f.name for f in bk.files(run=7)] == names
    for n in names:
        assert [e.event for e in bk.story(n)] == [Event.DETECTED]
    assert [(r.run, r.files) for r in bk.runs()] == [(7, 30)]
    bk.close()
