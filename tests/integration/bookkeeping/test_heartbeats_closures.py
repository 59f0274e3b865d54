"""Schema 5: daemon heartbeats, and alarms that close themselves or are acknowledged by someone."""

from __future__ import annotations

import getpass
from datetime import timedelta

import sqlalchemy as sa

from farmtools.bookkeeping import Bookkeeping, Event, FileState, schema
from farmtools.bookkeeping.heartbeat import Heartbeat, silent
from farmtools.bookkeeping.schema import now
from tests.integration.bookkeeping.schemas import reopened_at
from tests.states import walk


def _file(bk: Bookkeeping, name: str = "run1-seq0.dat") -> str:
    bk.register_file(name, source_path=f"/daq/{name}", run=1, seq=0, size=10, daq_write_time=now())
    return name


def test_a_version_5_database_gets_the_new_tables_by_its_upgrade_step(
    bk: Bookkeeping, db_url: str
) -> None:
    def undo(conn: sa.Connection) -> None:  # the shift's tables came with schema version 6
        conn.exec_driver_sql("DROP TABLE alarm_closures")
        conn.exec_driver_sql("DROP TABLE heartbeats")

    again = reopened_at(bk, db_url, 5, undo)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION >= 6
        with again.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"heartbeats", "alarm_closures"} <= tables
        again.beat("ingest", started=now())
        assert [h.daemon for h in again.heartbeats()] == ["ingest"]
    finally:
        again.close()


def test_a_heartbeat_is_written_at_most_every_interval_and_says_when_it_stopped(
    bk: Bookkeeping,
) -> None:
    hb = Heartbeat(bk, "processing", every_s=3600.0)
    assert hb.beat("first") is True
    assert hb.beat("second") is False  # within the interval: no write
    (row,) = bk.heartbeats()
    assert row.detail == "first" and row.stopped is None and row.started == hb.started
    assert not silent(row, 60.0)
    assert silent(row, 60.0, at=row.beat + timedelta(seconds=61))
    hb.stop()
    (row,) = bk.heartbeats()
    assert row.stopped is not None
    assert not silent(row, 60.0, at=row.beat + timedelta(days=1))  # stopped, not silent


def test_a_heartbeat_without_its_database_does_not_raise(tmp_path: object) -> None:
    bk = Bookkeeping(f"sqlite:///{tmp_path}/bk.sqlite")
    bk.close()
    with bk.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE heartbeats")
    assert Heartbeat(bk, "ingest", 1.0).beat() is False
    assert Heartbeat(None, "ingest", 1.0).beat() is False


def test_a_reingested_file_closes_its_ingest_alarm_and_its_story_says_so(bk: Bookkeeping) -> None:
    name = _file(bk)
    assert bk.transition(
        name,
        FileState.DETECTED,
        FileState.QUARANTINED,
        Event.QUARANTINED,
        alarm=("ingest", "truncated", f"{name}: truncated"),
    )
    bk.raise_alarm(name, "processing", "oom", "later trouble")  # not cleared by "stored"
    assert [a.kind for a in bk.alarms()] == ["truncated", "oom"]
    bk.transition(name, FileState.QUARANTINED, FileState.DETECTED, Event.RETRY)
    assert len(bk.alarms()) == 2  # a retry is not a fix
    walk(bk, name, FileState.STORED, Event.VERIFIED)
    assert [a.kind for a in bk.alarms()] == ["oom"]
    closed = next(a for a in bk.alarms(include_acknowledged=True) if a.kind == "truncated")
    assert (closed.closed_how, closed.closed_by) == ("cleared", "farmtools")
    assert closed.close_reason == "file now stored" and closed.closed is not None
    story = bk.story(name)
    assert story[-1].event == Event.ALARM_CLEARED
    assert story[-1].details is not None and story[-1].details["kind"] == "truncated"
    walk(bk, name, FileState.RECONSTRUCTED, Event.RECONSTRUCTED)
    assert bk.alarms() == []


def test_acknowledging_records_the_unix_user_and_only_once(bk: Bookkeeping) -> None:
    name = _file(bk)
    bk.raise_alarm(name, "processing", "walltime", "too slow")
    bk.raise_alarm(None, "monitor", "stuck_files", "3 files stuck")
    first, second = bk.alarms()
    assert bk.acknowledge_alarm(first.id) is True
    assert bk.acknowledge_alarm(first.id) is False  # already closed
    assert bk.acknowledge_alarm(second.id, by="shifter", reason="known") is True
    by = {a.kind: a for a in bk.alarms(include_acknowledged=True)}
    assert by["walltime"].closed_by == getpass.getuser()
    assert by["walltime"].closed_how == "acknowledged"
    assert (by["stuck_files"].closed_by, by["stuck_files"].close_reason) == ("shifter", "known")
    assert bk.story(name)[-1].event == Event.ALARM_ACKNOWLEDGED
