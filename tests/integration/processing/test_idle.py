"""The daemon does no database work while nothing changes, and still takes new files at once.

The manager runs for real (``Manager.run`` in a thread, local batch, real jobs); every SQL
statement its engine sends is counted with SQLAlchemy's ``before_cursor_execute`` event (the
change watch's ``PRAGMA data_version`` / LISTEN connection sits outside that engine, as it
costs no query).  Files arrive through a Bookkeeping of their own, as ingest's do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from farmtools.bookkeeping import Bookkeeping, FileState
from farmtools.config import FarmConfig
from farmtools.processing.manager import Manager
from tests.eventually import eventually
from tests.processing_farm import make_cfg, record_of, state_of, store


@contextmanager
def _daemon(cfg: FarmConfig) -> Iterator[tuple[Manager, list[str]]]:
    """The manager's loop in a thread, with the statements its engine runs."""
    manager = Manager(cfg, bk=Bookkeeping.from_config(cfg))
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(manager.bk.engine, "before_cursor_execute", count)
    stop = threading.Event()
    t = threading.Thread(target=manager.run, args=(stop,))
    t.start()
    try:
        yield manager, statements
    finally:
        stop.set()
        t.join()
        manager.bk.close()


def _until(check: Any, timeout: float = 60.0, what: str = "the file's next state") -> float:
    """Seconds until ``check()`` holds."""
    t0 = time.monotonic()
    eventually(check, timeout, what, interval=0.01)
    return time.monotonic() - t0


def _quiet(statements: list[str], seconds: float) -> list[str]:
    """The statements run during ``seconds`` from now, but the heartbeat's (one small write per
    ``monitor.heartbeat_s``, on purpose: it says the daemon is alive)."""
    start = len(statements)
    time.sleep(seconds)
    return [s for s in statements[start:] if "heartbeats" not in s]


def test_an_idle_daemon_runs_no_query_and_claims_a_new_file_at_once(tmp_path: Path) -> None:
    cfg = make_cfg(tmp_path, processing={"claim_s": 0.02, "poll_s": 0.05, "rescan_s": 60.0})
    ingest = Bookkeeping.from_config(cfg)
    with _daemon(cfg) as (_manager, statements):
        first = store(ingest, cfg, 1, 0)
        _until(lambda: state_of(ingest, first) == FileState.RECONSTRUCTED)
        # the last poll after the job, then nothing is in flight (no event tells it: the quiet
        # that follows is what is tested)
        time.sleep(0.5)
        # 100 passes of claim_s: before the change watch, ~100 claims and ~100 due-job queries
        assert _quiet(statements, 2.0) == []
        second = store(ingest, cfg, 1, 1)
        waited = _until(lambda: state_of(ingest, second) != FileState.STORED)
        assert waited < 5.0  # a claim_s poll, give or take a loaded machine
        _until(lambda: state_of(ingest, second) == FileState.RECONSTRUCTED)
        (beat,) = ingest.heartbeats()
        assert beat.daemon == "processing" and beat.stopped is None
    (beat,) = ingest.heartbeats()
    assert beat.stopped is not None  # a clean stop says so: stopped, not silent
    ingest.close()


def test_a_job_in_cool_off_is_submitted_when_due_without_any_change(tmp_path: Path) -> None:
    """The wake-up time of a retry comes from the job rows, not from a database change."""
    cfg = make_cfg(
        tmp_path,
        processing={"claim_s": 0.02, "poll_s": 0.05, "rescan_s": 60.0, "cooloff_s": 1.5},
    )
    ingest = Bookkeeping.from_config(cfg)
    # an input that vanishes before the job reads it: exit 66, transient, retried after 1.5 s
    name = store(ingest, cfg, 2, 0)
    stored = record_of(ingest, name).storage_path
    assert stored is not None
    raw = Path(stored)
    hidden = raw.with_suffix(".hidden")
    raw.rename(hidden)
    with _daemon(cfg) as (manager, _statements):
        _until(lambda: any(e.event == "retry" for e in ingest.story(name)))
        hidden.rename(raw)
        _until(lambda: state_of(ingest, name) == FileState.RECONSTRUCTED)
    assert [j.try_number for j in manager.jobs.of_file(name)] == [1, 2]
    ingest.close()


@pytest.mark.postgres
def test_postgres_notify_wakes_the_daemon_and_the_rescan_finds_a_silent_write(
    tmp_path: Path, postgres_url: str
) -> None:
    """A NOTIFY-ed file is taken at once; one stored by hand (no NOTIFY) by the timed rescan."""
    cfg = make_cfg(
        tmp_path,
        database={"url": postgres_url},
        processing={"claim_s": 0.02, "poll_s": 0.05, "rescan_s": 3.0},
    )
    ingest = Bookkeeping.from_config(cfg)
    with _daemon(cfg) as (_manager, statements):
        first = store(ingest, cfg, 3, 0)
        _until(lambda: state_of(ingest, first) == FileState.RECONSTRUCTED)
        time.sleep(0.5)  # as above: the last poll after the job; the quiet that follows is tested
        idle = _quiet(statements, 1.0)
        assert not any("UPDATE files" in s for s in idle)  # no claim between rescans
        second = store(ingest, cfg, 3, 1)  # the transition to stored sends NOTIFY
        assert _until(lambda: state_of(ingest, second) != FileState.STORED) < 2.0
        # an operator's UPDATE by hand sends no NOTIFY: the rescan (3 s) still takes the file
        third = store(ingest, cfg, 3, 2)
        _until(lambda: state_of(ingest, third) == FileState.RECONSTRUCTED)
        with ingest.engine.begin() as conn:
            conn.execute(text("UPDATE files SET state = 'stored' WHERE name = :n"), {"n": third})
        assert _until(lambda: state_of(ingest, third) != FileState.STORED, timeout=30) < 10
    ingest.close()
