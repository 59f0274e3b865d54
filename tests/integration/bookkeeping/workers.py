"""Functions run in other processes (multiprocessing, spawn) by the racing tests.

Each opens its own :class:`Bookkeeping` on the URL, waits at the barrier so that all of them
start together, does its part and puts what it got on the queue.
"""

from __future__ import annotations

import os
from typing import Any

from farmtools.bookkeeping import Bookkeeping, Event, FileState


def open_db(url: str, barrier: Any, out: Any) -> None:
    """Open (create/upgrade) a database that does not exist yet, all at the same moment."""
    barrier.wait()
    try:
        bk = Bookkeeping(url)
        out.put(("ok", bk.schema_version()))
        bk.close()
    except Exception as exc:  # reported to the test, which fails with it
        out.put(("error", repr(exc)))


def claim_all(url: str, barrier: Any, out: Any, limit: int) -> None:
    """Claim detected files until none is left; report the names claimed."""
    bk = Bookkeeping(url)
    worker = f"w{os.getpid()}"
    got: list[str] = []
    barrier.wait()
    try:
        while recs := bk.claim(
            FileState.DETECTED,
            FileState.COPYING,
            limit=limit,
            worker=worker,
            event=Event.COPY_STARTED,
        ):
            got.extend(r.name for r in recs)
        out.put((worker, got, None))
    except Exception as exc:
        out.put((worker, got, repr(exc)))
    finally:
        bk.close()


def transition_all(url: str, barrier: Any, out: Any, names: list[str]) -> None:
    """Try to move every file stored -> queued; report the names this process moved."""
    bk = Bookkeeping(url)
    barrier.wait()
    won = [
        n
        for n in names
        if bk.transition(n, FileState.STORED, FileState.QUEUED, Event.QUEUED, {"by": os.getpid()})
    ]
    out.put((os.getpid(), won, None))
    bk.close()


def register_all(url: str, barrier: Any, out: Any, names: list[str]) -> None:
    """Register the same names as the other processes (run 7); report errors."""
    bk = Bookkeeping(url)
    barrier.wait()
    try:
        for i, n in enumerate(names):
            bk.register_file(n, source_path=f"/daq/{n}", run=7, seq=i, size=10, daq_write_time=None)
        out.put((os.getpid(), names, None))
    except Exception as exc:
        out.put((os.getpid(), [], repr(exc)))
    finally:
        bk.close()
