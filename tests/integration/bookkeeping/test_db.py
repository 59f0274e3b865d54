"""The bookkeeping database on SQLite and on a real PostgreSQL: schema, state, story, alarms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from farmtools.bookkeeping import Bookkeeping, Event, FileState, schema
from farmtools.bookkeeping import db as bkdb
from farmtools.bookkeeping.db import SchemaError
from farmtools.bookkeeping.schema import now
from farmtools.statemachine import IllegalTransition
from tests.integration.bookkeeping.schemas import as_version, reopened_at
from tests.states import walk


def _add(bk: Bookkeeping, run: int, seq: int, size: int = 100, **kw: object) -> str:
    name = f"run{run}-seq{seq}.dat"
    bk.register_file(
        name,
        source_path=f"/daq/{name}",
        run=run,
        seq=seq,
        size=size,
        daq_write_time=kw.pop("daq_write_time", now() - timedelta(seconds=5)),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )
    return name


# -- schema ------------------------------------------------------------------------------------
def test_new_database_gets_the_current_schema(bk: Bookkeeping) -> None:
    assert bk.schema_version() == schema.SCHEMA_VERSION
    with bk.engine.connect() as conn:
        tables = set(sa.inspect(conn).get_table_names())
    assert {"runs", "files", "events", "alarms", "schema_version", "jobs", "archives"} <= tables


def test_sqlite_is_in_wal_mode(tmp_path: object) -> None:
    bk = Bookkeeping(f"sqlite:///{tmp_path}/sub/dir/bk.sqlite")  # parents created too
    with bk.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 60000
    bk.close()


def test_reopening_is_idempotent(db_url: str) -> None:
    for _ in range(3):
        b = Bookkeeping(db_url)
        _add(b, 1, 0)  # same name each time: registered once
        b.close()
    b = Bookkeeping(db_url)
    with b.engine.connect() as conn:
        versions = conn.execute(sa.select(schema.schema_version.c.version)).scalars().all()
    assert versions == [schema.SCHEMA_VERSION]
    assert len(b.files()) == 1
    b.close()


def _drop_triggers(bk: Bookkeeping) -> None:
    def undo(conn: sa.Connection) -> None:
        if bk.dialect == "sqlite":
            conn.exec_driver_sql("DROP TRIGGER events_no_update")
            conn.exec_driver_sql("DROP TRIGGER events_no_delete")
        else:
            conn.exec_driver_sql("DROP TRIGGER events_append_only ON events")
            conn.exec_driver_sql("DROP TRIGGER events_no_truncate ON events")

    as_version(bk, 1, undo)


def test_a_version_1_database_is_upgraded(bk: Bookkeeping, db_url: str) -> None:
    name = _add(bk, 1, 0)
    _drop_triggers(bk)  # what a database written by schema version 1 looked like
    assert bk.schema_version() == 1
    with bk.engine.begin() as conn:  # the story could be rewritten then
        conn.execute(sa.update(schema.events).values(host="rewritten"))
    bk.close()

    again = Bookkeeping(db_url)
    assert again.schema_version() == schema.SCHEMA_VERSION
    with pytest.raises(sa.exc.DBAPIError, match="append-only"), again.engine.begin() as conn:
        conn.execute(sa.update(schema.events).values(host="again"))
    assert [e.host for e in again.story(name)] == ["rewritten", "rewritten"]
    again.close()


def test_a_version_3_database_gets_the_submission_key_columns(bk: Bookkeeping, db_url: str) -> None:
    def undo(conn: sa.Connection) -> None:  # a jobs table of schema version 3
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN submit_key")
        conn.exec_driver_sql("ALTER TABLE jobs DROP COLUMN submit_intent")

    again = reopened_at(bk, db_url, 3, undo)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION >= 4
        with again.engine.connect() as conn:
            columns = {c["name"] for c in sa.inspect(conn).get_columns("jobs")}
        assert {"submit_key", "submit_intent"} <= columns
    finally:
        again.close()


def test_a_version_4_database_gets_the_monitor_check_tables(bk: Bookkeeping, db_url: str) -> None:
    def undo(conn: sa.Connection) -> None:  # what a database of schema version 4 looked like
        schema.dqm_checks.drop(conn)
        schema.dqm_references.drop(conn)

    again = reopened_at(bk, db_url, 4, undo)
    try:
        assert again.schema_version() == schema.SCHEMA_VERSION >= 5
        with again.engine.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
        assert {"dqm_checks", "dqm_references"} <= tables
        with again.engine.begin() as conn:  # the step again on its own result: nothing to do
            bkdb._UPGRADES[4](conn)
    finally:
        again.close()


def test_upgrade_steps_run_in_order(
    bk: Bookkeeping, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A future schema change: the step runs once, the new version is stored."""
    ran: list[int] = []

    def step(conn: sa.Connection) -> None:
        ran.append(1)
        conn.exec_driver_sql("ALTER TABLE runs ADD COLUMN detector TEXT")

    v = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "SCHEMA_VERSION", v + 1)
    monkeypatch.setitem(bkdb._UPGRADES, v, step)
    assert bk.upgrade() == v + 1
    assert bk.upgrade() == v + 1
    assert ran == [1]
    with bk.engine.connect() as conn:
        cols = {c["name"] for c in sa.inspect(conn).get_columns("runs")}
    assert "detector" in cols


def test_a_newer_database_is_refused(bk: Bookkeeping, db_url: str) -> None:
    with bk.engine.begin() as conn:
        conn.execute(sa.insert(schema.schema_version).values(version=999, applied=now()))
    with pytest.raises(SchemaError, match="schema version 999 is newer"):
        Bookkeeping(db_url)


def test_the_story_is_append_only(bk: Bookkeeping) -> None:
    name = _add(bk, 1, 0)
    for stmt in (sa.update(schema.events).values(event="x"), sa.delete(schema.events)):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), bk.engine.begin() as conn:
            conn.execute(stmt)
    assert [e.event for e in bk.story(name)] == [Event.WRITTEN, Event.DETECTED]


# -- files and their story -----------------------------------------------------------------------
def test_register_is_idempotent_and_writes_the_first_events(bk: Bookkeeping) -> None:
    written = datetime(2016, 10, 27, 11, 55, 0, 123456, tzinfo=UTC)
    name = _add(bk, 1014, 2, size=1072226134, daq_write_time=written)
    again = bk.register_file(
        name, source_path="/elsewhere", run=1014, seq=2, size=1, daq_write_time=None
    )
    assert again.size == 1072226134 and again.source_path == f"/daq/{name}"
    rec = bk.get(name)
    assert rec is not None
    assert (rec.run, rec.seq, rec.state, rec.tries) == (1014, 2, FileState.DETECTED, 0)
    assert rec.daq_write_time == written  # aware UTC, microseconds kept, on every backend
    story = bk.story(name)
    assert [e.event for e in story] == [Event.WRITTEN, Event.DETECTED]
    assert story[0].time == written
    assert story[1].details == {"source": f"/daq/{name}"}
    assert story[1].time.tzinfo is not None
    assert bk.get("run1-seq0.dat") is None
    assert bk.story("run1-seq0.dat") == []


def test_ignored_names_have_no_run(bk: Bookkeeping) -> None:
    bk.register_file(
        "notes; rm -rf $(x).txt",
        source_path="/daq/notes; rm -rf $(x).txt",
        run=None,
        seq=None,
        size=3,
        daq_write_time=None,
        state=FileState.IGNORED,
        event=Event.IGNORED,
    )
    rec = bk.get("notes; rm -rf $(x).txt")
    assert rec is not None and rec.state == FileState.IGNORED
    assert [e.event for e in bk.story(rec.name)] == [Event.IGNORED]
    assert bk.runs() == []


def test_naive_times_are_refused(bk: Bookkeeping) -> None:
    with pytest.raises(sa.exc.StatementError, match="naive datetime"):
        _add(bk, 1, 0, daq_write_time=datetime(2016, 10, 27, 13, 55))


def test_claim_moves_files_once_in_order(bk: Bookkeeping) -> None:
    names = [_add(bk, 1, s) for s in range(5)]
    first = bk.claim(
        FileState.DETECTED, FileState.COPYING, limit=2, worker="evb:1", event=Event.COPY_STARTED
    )
    assert [r.name for r in first] == names[:2]
    assert all(r.state == FileState.COPYING and r.claimed_by == "evb:1" for r in first)
    rest = bk.claim("detected", "copying", limit=10, worker="evb:2", event=Event.COPY_STARTED)
    assert [r.name for r in rest] == names[2:]
    assert bk.claim("detected", "copying", worker="evb:3", event=Event.COPY_STARTED) == []
    ev = bk.story(names[0])[-1]
    assert ev.event == Event.COPY_STARTED
    assert ev.details == {"worker": "evb:1", "from": "detected"}


def test_claim_respects_not_before_and_run(bk: Bookkeeping) -> None:
    a, b, c = _add(bk, 1, 0), _add(bk, 1, 1), _add(bk, 2, 0)
    bk.update_fields(a, not_before=now() + timedelta(hours=1))  # waiting for a retry
    got = bk.claim("detected", "copying", limit=10, worker="w", event="copy_started", run=1)
    assert [r.name for r in got] == [b]
    bk.update_fields(a, not_before=now() - timedelta(seconds=1))
    got = bk.claim("detected", "copying", limit=10, worker="w", event="copy_started")
    assert [r.name for r in got] == [a, c]
    assert all(r.not_before is None for r in got)


def test_transition_is_compare_and_set(bk: Bookkeeping) -> None:
    name = _add(bk, 3, 0)
    assert not bk.transition(name, FileState.COPYING, FileState.STORED, Event.VERIFIED)
    assert [e.event for e in bk.story(name)] == [Event.WRITTEN, Event.DETECTED]  # nothing
    assert bk.transition(  # from one of several states, with fields, in one statement
        name,
        [FileState.DETECTED, FileState.COPYING],
        FileState.QUARANTINED,
        Event.QUARANTINED,
        {"adler32": "0a1b2c3d"},
        fields={"adler32": "0a1b2c3d", "storage_path": "/st/run3/run3-seq0.dat", "tries": 1},
    )
    rec = bk.get(name)
    assert rec is not None
    assert (rec.state, rec.adler32, rec.storage_path, rec.tries) == (
        FileState.QUARANTINED,
        "0a1b2c3d",
        "/st/run3/run3-seq0.dat",
        1,
    )
    assert bk.story(name)[-1].details == {"adler32": "0a1b2c3d"}
    assert not bk.transition("run9-seq9.dat", "detected", "copying", Event.COPY_STARTED)


def test_a_move_the_file_machine_does_not_allow_raises_and_writes_nothing(bk: Bookkeeping) -> None:
    name = _add(bk, 3, 1)
    with pytest.raises(IllegalTransition, match="detected -> reconstructed"):
        bk.transition(name, FileState.DETECTED, FileState.RECONSTRUCTED, Event.RECONSTRUCTED)
    with pytest.raises(IllegalTransition, match="stored -> analysed"):
        bk.claim(FileState.STORED, FileState.ANALYSED, worker="w", event=Event.ANALYSED)
    with pytest.raises(IllegalTransition, match="cannot start in stored"):
        _ = bk.register_file(
            "run3-seq2.dat", source_path="x", run=3, seq=2, size=1, daq_write_time=None,
            state=FileState.STORED,
        )  # fmt: skip
    assert bk.get("run3-seq2.dat") is None
    assert (bk.get(name) or pytest.fail()).state == FileState.DETECTED
    assert [e.event for e in bk.story(name)] == [Event.WRITTEN, Event.DETECTED]


def test_quarantine_raises_an_alarm_in_the_same_transition(bk: Bookkeeping) -> None:
    name = _add(bk, 4, 0)
    assert bk.transition(
        name,
        FileState.DETECTED,
        FileState.QUARANTINED,
        Event.QUARANTINED,
        {"reason": "conflict"},
        fields={"last_error": "different bytes at the destination"},
        alarm=("ingest", "checksum_conflict", f"{name}: different bytes at the destination"),
    )
    assert [e.event for e in bk.story(name)][-2:] == [Event.QUARANTINED, Event.ALARM]
    (alarm,) = bk.alarms()
    assert (alarm.file, alarm.source, alarm.kind) == (name, "ingest", "checksum_conflict")
    assert not alarm.acknowledged
    bk.raise_alarm(None, "monitor", "disk", "storage 95% full")
    bk.raise_alarm("run5-seq5.dat", "ingest", "unknown", "vanished")
    assert [a.message for a in bk.alarms()][1:] == [
        "storage 95% full",
        "run5-seq5.dat: vanished",
    ]
    bk.acknowledge_alarm(alarm.id)
    assert [a.kind for a in bk.alarms()] == ["disk", "unknown"]
    assert len(bk.alarms(include_acknowledged=True)) == 3


def test_a_file_registered_with_an_alarm_gets_it_in_the_same_transaction(bk: Bookkeeping) -> None:
    why = "raw-looking name with an unreadable run header"
    kw = {
        "source_path": "/daq/run6-seqX.dat",
        "run": None,
        "seq": None,
        "size": 3,
        "daq_write_time": None,
        "state": FileState.IGNORED,
        "event": Event.IGNORED,
        "details": {"reason": why},
        "alarm": ("ingest", "bad_name", why),
    }
    bk.register_file("run6-seqX.dat", **kw)  # type: ignore[arg-type]
    assert [e.event for e in bk.story("run6-seqX.dat")] == [Event.IGNORED, Event.ALARM]
    (alarm,) = bk.alarms()
    assert (alarm.file, alarm.kind, alarm.message) == ("run6-seqX.dat", "bad_name", why)
    bk.register_file("run6-seqX.dat", **kw)  # type: ignore[arg-type]  # known: nothing again
    assert len(bk.alarms()) == 1 and len(bk.story("run6-seqX.dat")) == 2


def test_story_is_in_recording_order(bk: Bookkeeping) -> None:
    name = _add(bk, 5, 0)
    bk.claim("detected", "copying", worker="w1", event=Event.COPY_STARTED)
    bk.transition(name, "copying", "detected", Event.RETRY, {"error": "server down"})
    bk.claim("detected", "copying", worker="w2", event=Event.COPY_STARTED)
    bk.record(name, Event.COPY_ENDED, {"bytes": 100})
    bk.transition(name, "copying", "stored", Event.VERIFIED)
    bk.raise_alarm(name, "test", "note", "just a note")
    story = bk.story(name)
    assert [e.event for e in story] == [
        Event.WRITTEN,
        Event.DETECTED,
        Event.COPY_STARTED,
        Event.RETRY,
        Event.COPY_STARTED,
        Event.COPY_ENDED,
        Event.VERIFIED,
        Event.ALARM,
    ]
    times = [e.time for e in story[1:]]
    assert times == sorted(times)
    assert [e.details["worker"] for e in story if e.event == Event.COPY_STARTED] == ["w1", "w2"]  # type: ignore[index]
    with pytest.raises(KeyError, match=r"run5-seq9\.dat"):
        bk.record("run5-seq9.dat", Event.COPY_ENDED)


def test_files_runs_and_counts(bk: Bookkeeping) -> None:
    for run, seq in [(12, 1), (11, 0), (12, 0), (11, 1), (12, 2)]:
        _add(bk, run, seq, size=1000 * run + seq)
    walk(bk, "run12-seq1.dat", FileState.STORED, Event.VERIFIED)
    assert [f.name for f in bk.files()] == [
        "run11-seq0.dat",
        "run11-seq1.dat",
        "run12-seq0.dat",
        "run12-seq1.dat",
        "run12-seq2.dat",
    ]
    assert [f.name for f in bk.files(run=12, state="detected")] == [
        "run12-seq0.dat",
        "run12-seq2.dat",
    ]
    assert [f.name for f in bk.files(state=FileState.STORED)] == ["run12-seq1.dat"]
    assert len(bk.files(limit=2)) == 2
    runs = {r.run: r for r in bk.runs()}
    assert sorted(runs) == [11, 12]
    assert (runs[12].files, runs[12].bytes) == (3, 36003)
    assert runs[12].states == {"detected": 2, "stored": 1}
    assert bk.counts_by_state() == {"detected": 4, "stored": 1}
