"""The bookkeeping database: :class:`Bookkeeping`, the API every stage uses to claim and record work.

Owns the connection (SQLite with WAL and a busy timeout by default, PostgreSQL by URL), the schema
creation/upgrade, and the rules that keep state and story consistent:

* every state change is a compare-and-set (``UPDATE ... WHERE state = :from``) written in the same
  transaction as its story event, so the story never disagrees with the state;
* :meth:`Bookkeeping.claim` hands each file to exactly one worker, also between processes on
  different hosts on PostgreSQL (``FOR UPDATE SKIP LOCKED`` in a materialised candidate CTE) and
  between processes on SQLite (write transactions start with ``BEGIN IMMEDIATE``, so the
  sub-select and the update see the same snapshot);
* the story is append-only: nothing here updates or deletes an ``events`` row, and since schema
  version 2 the database's own triggers refuse it to anyone.

Imports SQLAlchemy and :mod:`farmtools.bookkeeping.schema` / ``states`` / ``errors`` only (and
:func:`farmtools.config.masked_url`).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Connection,
    Engine,
    Row,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    or_,
    select,
    update,
)

from farmtools.bookkeeping import schema
from farmtools.bookkeeping.changes import WAKE_STATES, ChangeWatch, channel
from farmtools.bookkeeping.errors import (
    DATABASE_ATTR,
    DatabaseUnavailable,
    database_unavailable,
    first_line,
)
from farmtools.bookkeeping.schema import alarms, events, files, metadata, now, runs
from farmtools.bookkeeping.states import FILE_MACHINE, Event, FileState
from farmtools.config import masked_url

if TYPE_CHECKING:
    from farmtools.config import FarmConfig


@dataclass(frozen=True)
class FileRecord:
    """One row of ``files``: a raw file (or an ignored name) and its current state."""

    id: int
    name: str
    run: int | None
    seq: int | None
    size: int | None
    adler32: str | None
    daq_write_time: datetime | None
    source_path: str
    storage_path: str | None
    state: FileState
    state_since: datetime
    tries: int
    last_error: str | None
    claimed_by: str | None
    not_before: datetime | None


@dataclass(frozen=True)
class StoryEvent:
    """One line of a file's story."""

    time: datetime
    event: str
    details: dict[str, Any] | None
    host: str
    pid: int


@dataclass(frozen=True)
class RunSummary:
    """Files, bytes and files per state of one run."""

    run: int
    files: int
    bytes: int
    states: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class AlarmRecord:
    """An alarm the monitor shows until someone acknowledges it or its condition clears.

    ``closed``/``closed_how``/``closed_by``/``close_reason``: when and how it was closed
    (``acknowledged`` by a Unix user, or ``cleared`` by ``farmtools``), None while open or for an
    alarm acknowledged before schema version 5 (which recorded no closure).
    """

    id: int
    time: datetime
    file: str | None
    source: str
    kind: str
    message: str
    acknowledged: bool
    closed: datetime | None = None
    closed_how: str | None = None
    closed_by: str | None = None
    close_reason: str | None = None


@dataclass(frozen=True)
class HeartbeatRecord:
    """When a daemon on a host last worked (one row of ``heartbeats``)."""

    daemon: str
    host: str
    pid: int
    started: datetime
    beat: datetime
    stopped: datetime | None
    detail: str


#: ``to_state -> sources``: a file entering ``to_state`` clears its open alarms raised by these
#: stages, in the same transaction (the story says so): a re-ingested file's ingest alarm, a
#: reconstructed file's processing alarm.  Alarms of other sources stay until acknowledged.
ALARMS_CLEARED_BY: dict[str, tuple[str, ...]] = {
    FileState.STORED: ("ingest",),
    FileState.RECONSTRUCTED: ("ingest", "processing"),
    FileState.ANALYSED: ("ingest", "processing", "analysis"),
}

#: ``alarm_closures.by`` of an alarm the farm closed itself.
CLEARED_BY = "farmtools"


@dataclass(frozen=True)
class AnalysisRecord:
    """One row of ``analyses``: the results of one analysed group of reconstructed files.

    ``lifetimes_us`` / ``lifetime_errors_us`` are per view (0, 1); None where the fit gave no
    finite value.  ``gains`` and ``asymmetries`` are keyed by LEM number (1..12).
    """

    run: int
    files: list[str]
    outputs: list[str]
    time: datetime
    lifetimes_us: tuple[float | None, float | None]
    lifetime_errors_us: tuple[float | None, float | None]
    lifetime_us: float | None
    lifetime_err_us: float | None
    summary: str
    gains: dict[int, float | None]
    asymmetries: dict[int, float | None]
    first_seq: int = 0
    last_seq: int = 0
    id: int = 0
    #: fewer files than ``[analysis] group_size``: the remainder of a closed run
    partial: bool = False

    def row(self) -> dict[str, Any]:
        """The values of its ``analyses`` row (JSON keys are strings)."""
        return {
            "run": self.run,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "files": list(self.files),
            "outputs": list(self.outputs),
            "time": self.time,
            "lifetime0_us": self.lifetimes_us[0],
            "lifetime0_err_us": self.lifetime_errors_us[0],
            "lifetime1_us": self.lifetimes_us[1],
            "lifetime1_err_us": self.lifetime_errors_us[1],
            "lifetime_us": self.lifetime_us,
            "lifetime_err_us": self.lifetime_err_us,
            "summary": self.summary,
            "gains": {str(k): v for k, v in self.gains.items()},
            "asymmetries": {str(k): v for k, v in self.asymmetries.items()},
            "partial": self.partial,
        }


def _analysis_record(row: Row[Any]) -> AnalysisRecord:
    m = row._mapping
    return AnalysisRecord(
        id=m["id"],
        run=m["run"],
        first_seq=m["first_seq"],
        last_seq=m["last_seq"],
        files=list(m["files"]),
        outputs=list(m["outputs"]),
        time=m["time"],
        lifetimes_us=(m["lifetime0_us"], m["lifetime1_us"]),
        lifetime_errors_us=(m["lifetime0_err_us"], m["lifetime1_err_us"]),
        lifetime_us=m["lifetime_us"],
        lifetime_err_us=m["lifetime_err_us"],
        summary=m["summary"],
        gains={int(k): v for k, v in m["gains"].items()},
        asymmetries={int(k): v for k, v in m["asymmetries"].items()},
        partial=bool(m["partial"]),
    )


class _GroupMoved(Exception):
    """Raised inside :meth:`Bookkeeping.record_analysis` to roll back a partly moved group."""


class SchemaError(RuntimeError):
    """The database was written by a newer farmtools, or cannot be upgraded automatically."""


def _make_events_append_only(conn: Connection) -> None:
    """Upgrade 1 -> 2: the append-only triggers on ``events`` (see :data:`schema.APPEND_ONLY_DDL`)."""
    for stmt in schema.APPEND_ONLY_DDL.get(conn.dialect.name, ()):
        conn.exec_driver_sql(stmt)


def _add_analyses(conn: Connection) -> None:
    """Upgrade 2 -> 3: the ``analyses`` table and its index (see :data:`schema.analyses`)."""
    schema.analyses.create(conn, checkfirst=True)


def _add_submit_key(conn: Connection) -> None:
    """Upgrade 3 -> 4: ``jobs.submit_key`` and ``jobs.submit_intent`` (see :data:`schema.jobs`).

    Only the columns the table lacks are added: a ``jobs`` table created by this version's
    ``create_all`` (a database whose jobs table was new) has them already.
    """
    have = {c["name"] for c in inspect(conn).get_columns("jobs")}
    for column in (schema.jobs.c.submit_key, schema.jobs.c.submit_intent):
        if column.name not in have:
            kind = column.type.compile(dialect=conn.dialect)
            conn.exec_driver_sql(f"ALTER TABLE jobs ADD COLUMN {column.name} {kind}")


def _add_dqm_tables(conn: Connection) -> None:
    """Upgrade 4 -> 5: the monitor's ``dqm_checks`` and ``dqm_references`` tables (idempotent)."""
    schema.dqm_checks.create(conn, checkfirst=True)
    schema.dqm_references.create(conn, checkfirst=True)


def _add_heartbeats_and_closures(conn: Connection) -> None:
    """Part of upgrade 5 -> 6: the ``heartbeats`` and ``alarm_closures`` tables (idempotent)."""
    schema.heartbeats.create(conn, checkfirst=True)
    schema.alarm_closures.create(conn, checkfirst=True)


def _add_run_tables(conn: Connection) -> None:
    """Part of upgrade 5 -> 6: ``run_status``, ``run_flags`` and ``analyses.partial`` (idempotent).

    The tables are created if missing; the column is added only when ``analyses`` lacks it
    (a table its own step left out is not this step's to create).
    """
    schema.run_status.create(conn, checkfirst=True)
    schema.run_flags.create(conn, checkfirst=True)
    insp = inspect(conn)
    if insp.has_table("analyses") and "partial" not in {
        c["name"] for c in insp.get_columns("analyses")
    }:
        kind = schema.analyses.c.partial.type.compile(dialect=conn.dialect)
        conn.exec_driver_sql(
            f"ALTER TABLE analyses ADD COLUMN partial {kind} NOT NULL DEFAULT "
            + ("false" if conn.dialect.name == "postgresql" else "0")
        )


def _schema_6(conn: Connection) -> None:
    """Upgrade 5 -> 6: the run tables (end of run, registry) and the shift's tables."""
    _add_run_tables(conn)
    _add_heartbeats_and_closures(conn)


def _add_final_tables(conn: Connection) -> None:
    """Upgrade 6 -> 7: the tables of the 6x6x6 filter and final-storage files (idempotent)."""
    for table in schema.TABLES_SINCE[7]:
        table.create(conn, checkfirst=True)


#: Upgrade steps: ``_UPGRADES[v]`` brings a database from version ``v`` to ``v + 1``.
_UPGRADES: dict[int, Callable[[Connection], None]] = {
    1: _make_events_append_only,
    2: _add_analyses,
    3: _add_submit_key,
    4: _add_dqm_tables,
    5: _schema_6,
    6: _add_final_tables,
}

#: Key of the PostgreSQL advisory lock that serialises schema creation/upgrade between processes.
_SCHEMA_LOCK = 0x3A105


def _unix_user() -> str:
    """Who runs this process: the login name, else the user of the uid (sudo, cron, systemd)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def _file_record(row: Row[Any]) -> FileRecord:
    m = row._mapping
    return FileRecord(
        id=m["id"],
        name=m["name"],
        run=m["run"],
        seq=m["seq"],
        size=m["size"],
        adler32=m["adler32"],
        daq_write_time=m["daq_write_time"],
        source_path=m["source_path"],
        storage_path=m["storage_path"],
        state=FileState(m["state"]),
        state_since=m["state_since"],
        tries=m["tries"],
        last_error=m["last_error"],
        claimed_by=m["claimed_by"],
        not_before=m["not_before"],
    )


def _sqlite_path(url: str) -> str:
    """The file of a SQLite URL ('' for anything else, or an in-memory database)."""
    path = url.split("sqlite:///", 1)[1] if url.startswith("sqlite:///") else ""
    return "" if path == ":memory:" else path.split("?", 1)[0]


def _sqlite_engine(url: str) -> Engine:
    """SQLite tuned for several processes: WAL, a long busy timeout, immediate write transactions."""
    path = _sqlite_path(url)
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 60.0})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (pysqlite's own BEGIN is deferred).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA busy_timeout=60000")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # A deferred transaction that reads and then writes fails at once with SQLITE_BUSY when
        # another process wrote in between; an immediate one waits for the lock instead.
        immediate = conn.get_execution_options().get("farmtools_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Bookkeeping:
    """The bookkeeping database at ``url`` (a SQLAlchemy URL); creates/upgrades its schema on open.

    >>> bk = Bookkeeping("sqlite:////tmp/bk.sqlite")          # doctest: +SKIP
    >>> bk.register_file("run1-seq0.dat", source_path="/daq/run1-seq0.dat", run=1, seq=0,
    ...                  size=1234, daq_write_time=now())      # doctest: +SKIP
    >>> [f.name for f in bk.claim("detected", "copying", worker="evb:42", event="copy_started")]
    ['run1-seq0.dat']                                          # doctest: +SKIP
    """

    def __init__(self, url: str, *, upgrade: bool = True, create: bool = True) -> None:
        """Open the database at ``url``.

        ``create=False`` (the shift's read-only commands) refuses a SQLite file that does not
        exist yet with :class:`DatabaseUnavailable`, instead of inventing an empty database whose
        empty tables look like "no data".  A database that cannot be reached or read raises
        :class:`DatabaseUnavailable` naming it (password masked) when the schema is checked.
        """
        self.url = url
        safe = masked_url(url)
        sqlite_path = _sqlite_path(url)
        if not create and sqlite_path and not Path(sqlite_path).exists():
            raise DatabaseUnavailable(safe, "no such database file (nothing created)")
        try:
            if url.startswith("sqlite"):
                self.engine = _sqlite_engine(url)
            else:
                if url.startswith("postgresql://"):
                    url = "postgresql+psycopg://" + url[len("postgresql://") :]
                self.engine = create_engine(url, pool_pre_ping=True)
        except OSError as exc:  # the SQLite file's directory cannot be made
            raise DatabaseUnavailable(safe, f"{exc.strerror or exc}: {exc.filename}") from exc

        @event.listens_for(self.engine, "handle_error")
        def _name_database(context: Any) -> None:
            # every error of this engine says which database it came from (password masked)
            for err in (context.sqlalchemy_exception, context.original_exception):
                with suppress(AttributeError, TypeError):  # an exception type without a __dict__
                    setattr(err, DATABASE_ATTR, safe)

        self.dialect = self.engine.dialect.name
        if upgrade:
            try:
                self.upgrade()
            except BaseException as exc:
                self.engine.dispose()  # no connection left open behind a refused database
                if database_unavailable(exc):
                    raise DatabaseUnavailable(safe, first_line(exc)) from exc
                raise

    @classmethod
    def from_config(cls, cfg: FarmConfig, *, create: bool = True) -> Bookkeeping:
        """The database named by ``database.url`` of the farm configuration.

        With ``create=False`` a missing SQLite file is refused and the message says which
        configuration named it (or that none was found), so "wrong directory" is not "no data".
        """
        try:
            return cls(cfg.database_url, create=create)
        except DatabaseUnavailable as exc:
            if create:
                raise
            raise DatabaseUnavailable(exc.database, f"{exc.reason}; {cfg.source_text}") from exc

    def close(self) -> None:
        self.engine.dispose()

    def _safe_url(self) -> str:
        """The URL without its password, for messages."""
        return masked_url(self.url)

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            conn.execution_options(farmtools_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def writing(self) -> AbstractContextManager[Connection]:
        """A write transaction for a stage's own tables (on SQLite it takes the write lock first)."""
        return self._write()

    def reading(self) -> AbstractContextManager[Connection]:
        """A read transaction for a stage's own tables."""
        return self._read()

    def _wake(self, conn: Connection, state: FileState | str) -> None:
        """On PostgreSQL, ``NOTIFY`` the listeners of ``state`` (one of :data:`WAKE_STATES`).

        Sent inside the transaction that moves the file, so PostgreSQL delivers it at commit,
        never before the change is visible (and drops it on rollback).  SQLite needs nothing:
        watchers read ``PRAGMA data_version`` (:class:`~farmtools.bookkeeping.changes.ChangeWatch`).
        """
        if self.dialect == "postgresql" and str(state) in WAKE_STATES:
            conn.execute(select(func.pg_notify(channel(state), "")))

    def watch(self, *states: FileState | str) -> ChangeWatch:
        """A :class:`~farmtools.bookkeeping.changes.ChangeWatch` for files entering ``states``."""
        return ChangeWatch(self.engine, states)

    @staticmethod
    def _whoami() -> tuple[str, int]:
        return socket.gethostname(), os.getpid()

    def _event_row(
        self, file_id: int, name: str, details: Mapping[str, Any] | None, time: datetime | None
    ) -> dict[str, Any]:
        host, pid = self._whoami()
        return {
            "file_id": file_id,
            "time": time or now(),
            "event": name,
            "details": dict(details) if details else None,
            "host": host,
            "pid": pid,
        }

    # -- schema --------------------------------------------------------------------------------
    @staticmethod
    def _stored_version(conn: Connection) -> int | None:
        if not conn.dialect.has_table(conn, "schema_version"):
            return None
        v = conn.execute(select(func.max(schema.schema_version.c.version))).scalar()
        return int(v) if v is not None else None

    def schema_version(self) -> int | None:
        """Version stored in the database, None for an empty database."""
        with self._read() as conn:
            return self._stored_version(conn)

    def upgrade(self) -> int:
        """Create missing tables and indexes and run upgrade steps; returns the version now stored.

        ``create_all`` only adds what is missing, so new tables of other stages appear without a
        version bump; column changes go through ``_UPGRADES``.  Safe when several processes open
        a new database at once: the version is read inside the write transaction, which holds
        SQLite's write lock (``BEGIN IMMEDIATE``) or a PostgreSQL advisory lock.
        """
        with self._write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(select(func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
            current = self._stored_version(conn)
            if current is not None and current > schema.SCHEMA_VERSION:
                raise SchemaError(
                    f"{self._safe_url()}: schema version {current} is newer than this farmtools "
                    f"({schema.SCHEMA_VERSION}); upgrade farmtools"
                )
            # tables introduced after the stored version are left to their upgrade step
            later = {
                t
                for v, tables in schema.TABLES_SINCE.items()
                if current is not None and v > current
                for t in tables
            }
            metadata.create_all(
                conn, tables=[t for t in metadata.sorted_tables if t not in later], checkfirst=True
            )
            version = schema.SCHEMA_VERSION if current is None else current
            while version < schema.SCHEMA_VERSION:
                step = _UPGRADES.get(version)
                if step is None:
                    raise SchemaError(
                        f"{self._safe_url()}: no upgrade step from schema version {version}"
                    )
                step(conn)
                version += 1
            if current != version:
                conn.execute(insert(schema.schema_version).values(version=version, applied=now()))
        return version

    # -- writing -------------------------------------------------------------------------------
    def register_file(
        self,
        name: str,
        *,
        source_path: str,
        run: int | None,
        seq: int | None,
        size: int | None,
        daq_write_time: datetime | None,
        state: FileState = FileState.DETECTED,
        event: str = Event.DETECTED,
        details: Mapping[str, Any] | None = None,
        alarm: tuple[str, str, str] | None = None,
    ) -> FileRecord:
        """Add a file (idempotent: an existing name is returned unchanged, nothing is recorded).

        A new file gets two story events: ``written`` (at ``daq_write_time``) and ``event``.
        ``alarm`` = (source, kind, message) raises an alarm about it in the same transaction: a
        file registered as needing a person is never left without its alarm by a crash between
        two writes (a second look finds the name known and would not raise it again).
        Two processes registering the same name (or the first files of one run) at once on
        PostgreSQL do not fail: the inserts are ``ON CONFLICT DO NOTHING`` and the loser reads the
        winner's row.
        """
        FILE_MACHINE.check_initial(state)
        with self._write() as conn:
            t = now()
            row = conn.execute(select(files).where(files.c.name == name)).first()
            if row is not None:
                return _file_record(row)
            if (
                run is not None
                and conn.execute(select(runs.c.run).where(runs.c.run == run)).first() is None
            ):
                conn.execute(self._insert_ignore(runs).values(run=run, first_seen=t, comment=""))
            row = conn.execute(
                self._insert_ignore(files)
                .values(
                    name=name,
                    run=run,
                    seq=seq,
                    size=size,
                    daq_write_time=daq_write_time,
                    source_path=source_path,
                    state=str(state),
                    state_since=t,
                    tries=0,
                )
                .returning(*files.c)
            ).first()
            if row is None:  # registered by another process since our first look
                return _file_record(conn.execute(select(files).where(files.c.name == name)).one())
            rec = _file_record(row)
            new_events = []
            if daq_write_time is not None:
                new_events.append(
                    self._event_row(rec.id, Event.WRITTEN, {"size": size}, daq_write_time)
                )
            new_events.append(
                self._event_row(rec.id, event, {"source": source_path, **(details or {})}, t)
            )
            conn.execute(insert(events), new_events)
            if alarm is not None:
                self._alarm(conn, rec.id, *alarm, t=t)
            self._wake(conn, state)
            return rec

    def _insert_ignore(self, table: Any) -> Any:
        """``INSERT ... ON CONFLICT DO NOTHING`` in this database's dialect."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).on_conflict_do_nothing()

    def record(
        self,
        name: str,
        event: str,
        details: Mapping[str, Any] | None = None,
        *,
        time: datetime | None = None,
    ) -> None:
        """Append one story event to ``name``; KeyError if the file is unknown."""
        with self._write() as conn:
            fid = conn.execute(select(files.c.id).where(files.c.name == name)).scalar()
            if fid is None:
                raise KeyError(f"{name!r}: no such file in the bookkeeping")
            conn.execute(insert(events).values(self._event_row(fid, event, details, time)))

    def claim(
        self,
        from_state: FileState | str,
        to_state: FileState | str,
        *,
        limit: int = 1,
        worker: str,
        event: str,
        details: Mapping[str, Any] | None = None,
        run: int | None = None,
        name_prefix: str | None = None,
    ) -> list[FileRecord]:
        """Move up to ``limit`` files from ``from_state`` to ``to_state`` for ``worker``, atomically.

        Files whose ``not_before`` lies in the future (retry back-off) are skipped, and with
        ``name_prefix`` those whose name does not start with it (processing takes ``run``: the
        3x1x1 files).  Two callers
        never get the same file, whatever the backend; each claimed file gets story ``event``.
        """
        FILE_MACHINE.check(from_state, to_state)
        with self._write() as conn:
            t = now()  # taken once the write lock is held: story times follow the commit order
            cond = [
                files.c.state == str(from_state),
                or_(files.c.not_before.is_(None), files.c.not_before <= t),
            ]
            if run is not None:
                cond.append(files.c.run == run)
            if name_prefix is not None:
                cond.append(files.c.name.startswith(name_prefix, autoescape=True))
            candidates = (
                select(files.c.id)
                .where(*cond)
                .order_by(files.c.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
            if self.dialect == "postgresql":
                # A materialised CTE: as ``id IN (subquery)`` the planner may pick a nested-loop
                # semi-join that re-runs the locking subquery for every outer row, and then
                # LIMIT is not honoured (seen here: limit=2 claimed all 5 files).
                chosen = candidates.cte("claimable").prefix_with("MATERIALIZED")
                target = files.c.id == chosen.c.id
            else:
                target = files.c.id.in_(candidates.scalar_subquery())
            stmt = (
                update(files)
                .where(target, files.c.state == str(from_state))
                .values(state=str(to_state), state_since=t, claimed_by=worker, not_before=None)
                .returning(*files.c)
            )
            rows = conn.execute(stmt).all()
            recs = sorted((_file_record(r) for r in rows), key=lambda r: r.id)
            if recs:
                payload = {"worker": worker, "from": str(from_state), **(details or {})}
                conn.execute(
                    insert(events), [self._event_row(r.id, event, payload, t) for r in recs]
                )
                self._wake(conn, to_state)
        return recs

    def transition(
        self,
        name: str,
        from_state: FileState | str | Sequence[FileState | str],
        to_state: FileState | str,
        event: str,
        details: Mapping[str, Any] | None = None,
        *,
        fields: Mapping[str, Any] | None = None,
        alarm: tuple[str, str, str] | None = None,
    ) -> bool:
        """Compare-and-set ``name`` from ``from_state`` (one or several) to ``to_state``.

        Returns False (and records nothing) when the file is not in ``from_state``: somebody else
        moved it.  ``fields`` updates other columns in the same statement (``adler32``,
        ``storage_path``, ``tries``, ``last_error``, ``not_before``, ``claimed_by``, ``size``);
        ``alarm`` = (source, kind, message) raises an alarm in the same transaction.
        """
        froms = [str(from_state)] if isinstance(from_state, str) else [str(s) for s in from_state]
        FILE_MACHINE.check(froms, to_state)
        with self._write() as conn:
            t = now()
            values: dict[str, Any] = {"state": str(to_state), "state_since": t}
            values.update(fields or {})
            fid = conn.execute(
                update(files)
                .where(files.c.name == name, files.c.state.in_(froms))
                .values(**values)
                .returning(files.c.id)
            ).scalar()
            if fid is None:
                return False
            conn.execute(insert(events).values(self._event_row(fid, event, details, t)))
            self._clear_file_alarms(conn, [fid], to_state, t)
            if alarm is not None:
                self._alarm(conn, fid, *alarm, t=t)
            self._wake(conn, to_state)
        return True

    def record_analysis(
        self,
        result: AnalysisRecord,
        details: Mapping[str, Any] | None = None,
        *,
        from_state: FileState | str = FileState.RECONSTRUCTED,
        to_state: FileState | str = FileState.ANALYSED,
    ) -> bool:
        """Move every file of ``result.files`` to ``to_state`` and store ``result``, atomically.

        All or nothing, in one transaction: each file gets an ``analysed`` story event with
        ``details`` and the group gets one ``analyses`` row.  False (nothing recorded) when any
        file is no longer in ``from_state``: another process analysed the group meanwhile (two
        analysers on one farm), and a second row or a group split between two analyses would be
        wrong.
        """
        FILE_MACHINE.check(from_state, to_state)
        names = list(result.files)
        try:
            with self._write() as conn:
                t = now()
                ids = (
                    conn.execute(
                        update(files)
                        .where(files.c.name.in_(names), files.c.state == str(from_state))
                        .values(state=str(to_state), state_since=t)
                        .returning(files.c.id)
                    )
                    .scalars()
                    .all()
                )
                if len(ids) != len(set(names)):
                    raise _GroupMoved
                conn.execute(
                    insert(events), [self._event_row(i, Event.ANALYSED, details, t) for i in ids]
                )
                self._clear_file_alarms(conn, ids, to_state, t)
                conn.execute(insert(schema.analyses).values(**result.row()))
        except _GroupMoved:
            return False
        return True

    def analyses(self, run: int | None = None, *, limit: int | None = None) -> list[AnalysisRecord]:
        """Analysis results (of ``run``), newest first."""
        q = select(schema.analyses)
        if run is not None:
            q = q.where(schema.analyses.c.run == run)
        q = q.order_by(schema.analyses.c.time.desc(), schema.analyses.c.id.desc()).limit(limit)
        with self._read() as conn:
            return [_analysis_record(r) for r in conn.execute(q)]

    def update_fields(self, name: str, **values: Any) -> None:
        """Set columns of ``name`` without a state change (e.g. ``size`` after a re-check)."""
        with self._write() as conn:
            conn.execute(update(files).where(files.c.name == name).values(**values))

    def _alarm(
        self,
        conn: Connection,
        fid: int | None,
        source: str,
        kind: str,
        message: str,
        *,
        t: datetime,
    ) -> None:
        conn.execute(
            insert(alarms).values(
                time=t, file_id=fid, source=source, kind=kind, message=message, acknowledged=False
            )
        )
        if fid is not None:
            conn.execute(
                insert(events).values(
                    self._event_row(
                        fid, Event.ALARM, {"source": source, "kind": kind, "message": message}, t
                    )
                )
            )

    def raise_alarm(self, name: str | None, source: str, kind: str, message: str) -> None:
        """Raise an alarm about ``name`` (or about no file): a row in ``alarms`` + a story event.

        A name the bookkeeping does not know still gets its alarm, with the name in the message.
        """
        with self._write() as conn:
            fid = None
            if name is not None:
                fid = conn.execute(select(files.c.id).where(files.c.name == name)).scalar()
                if fid is None:
                    message = f"{name}: {message}"
            self._alarm(conn, fid, source, kind, message, t=now())

    def _clear_file_alarms(
        self, conn: Connection, fids: Sequence[int], to_state: FileState | str, t: datetime
    ) -> None:
        """Close the open alarms of ``fids`` that ``to_state`` resolves (:data:`ALARMS_CLEARED_BY`).

        One indexed read (``alarms.file_id``) per transition into a clearing state, nothing for
        the others: the hot path pays only where a file can have been in trouble.
        """
        sources = ALARMS_CLEARED_BY.get(str(to_state))
        if not sources or not fids:
            return
        rows = conn.execute(
            select(alarms.c.id, alarms.c.file_id, alarms.c.source, alarms.c.kind).where(
                alarms.c.file_id.in_(list(fids)),
                alarms.c.acknowledged.is_(False),
                alarms.c.source.in_(sources),
            )
        ).all()
        for alarm_id, fid, source, kind in rows:
            self._close_alarm(
                conn,
                alarm_id,
                fid,
                "cleared",
                CLEARED_BY,
                f"file now {to_state}",
                t=t,
                details={"source": source, "kind": kind},
            )

    def _close_alarm(
        self,
        conn: Connection,
        alarm_id: int,
        fid: int | None,
        how: str,
        by: str,
        reason: str,
        *,
        t: datetime,
        details: Mapping[str, Any] | None = None,
    ) -> bool:
        """Close one open alarm (False when it was closed already): the flag, the closure row
        and, for an alarm about a file, a line in the file's story."""
        done = conn.execute(
            update(alarms)
            .where(alarms.c.id == alarm_id, alarms.c.acknowledged.is_(False))
            .values(acknowledged=True)
        ).rowcount
        if not done:
            return False
        conn.execute(
            insert(schema.alarm_closures).values(
                alarm_id=alarm_id, time=t, how=how, by=by, reason=reason
            )
        )
        if fid is not None:
            event_name = Event.ALARM_CLEARED if how == "cleared" else Event.ALARM_ACKNOWLEDGED
            story = {"alarm": alarm_id, "by": by, "reason": reason, **(details or {})}
            conn.execute(insert(events).values(self._event_row(fid, event_name, story, t)))
        return True

    def acknowledge_alarm(self, alarm_id: int, by: str = "", reason: str = "") -> bool:
        """A person took note of an open alarm: closed, with who (the Unix user) and when.

        False when no open alarm has this id.
        """
        return self.close_alarm(alarm_id, "acknowledged", by or _unix_user(), reason)

    def close_alarm(self, alarm_id: int, how: str, by: str, reason: str) -> bool:
        """Close an open alarm (``how``: acknowledged | cleared); False when it was not open."""
        with self._write() as conn:
            fid = conn.execute(select(alarms.c.file_id).where(alarms.c.id == alarm_id)).scalar()
            return self._close_alarm(conn, alarm_id, fid, how, by, reason, t=now())

    # -- heartbeats ----------------------------------------------------------------------------
    def beat(
        self,
        daemon: str,
        *,
        started: datetime,
        detail: str = "",
        stopped: bool = False,
        host: str | None = None,
    ) -> None:
        """Replace ``daemon``'s heartbeat on this host (``stopped``: it is exiting cleanly)."""
        h = schema.heartbeats
        me, pid = self._whoami()
        host = host or me
        t = now()
        row = {
            "daemon": daemon,
            "host": host,
            "pid": pid,
            "started": started,
            "beat": t,
            "stopped": t if stopped else None,
            "detail": detail,
        }
        from sqlalchemy.dialects import postgresql, sqlite

        # one statement: two daemons of one name on a host (tests, a restart overlapping its
        # predecessor) replace each other's row instead of failing on the key
        key = [h.c.daemon, h.c.host]
        stmt = (
            postgresql.insert(h).values(**row).on_conflict_do_update(index_elements=key, set_=row)
            if self.dialect == "postgresql"
            else sqlite.insert(h).values(**row).on_conflict_do_update(index_elements=key, set_=row)
        )
        with self._write() as conn:
            conn.execute(stmt)

    def heartbeats(self) -> list[HeartbeatRecord]:
        """Every daemon's last heartbeat, by daemon and host."""
        h = schema.heartbeats
        with self._read() as conn:
            return [
                HeartbeatRecord(**r._mapping)
                for r in conn.execute(select(h).order_by(h.c.daemon, h.c.host))
            ]

    # -- reading -------------------------------------------------------------------------------
    def get(self, name: str) -> FileRecord | None:
        with self._read() as conn:
            row = conn.execute(select(files).where(files.c.name == name)).first()
        return _file_record(row) if row is not None else None

    def files(
        self,
        run: int | None = None,
        state: FileState | str | None = None,
        *,
        limit: int | None = None,
    ) -> list[FileRecord]:
        """Files, optionally of one run and/or in one state, in (run, seq, name) order."""
        q = select(files)
        if run is not None:
            q = q.where(files.c.run == run)
        if state is not None:
            q = q.where(files.c.state == str(state))
        q = q.order_by(files.c.run, files.c.seq, files.c.name).limit(limit)
        with self._read() as conn:
            return [_file_record(r) for r in conn.execute(q)]

    def runs(self) -> list[RunSummary]:
        """Every run with its file count, bytes and files per state."""
        q = (
            select(
                files.c.run, files.c.state, func.count(), func.coalesce(func.sum(files.c.size), 0)
            )
            .where(files.c.run.is_not(None))
            .group_by(files.c.run, files.c.state)
            .order_by(files.c.run)
        )
        acc: dict[int, tuple[int, int, dict[str, int]]] = {}
        with self._read() as conn:
            for run, state, n, nbytes in conn.execute(q):
                nf, nb, states = acc.get(run, (0, 0, {}))
                states[state] = int(n)
                acc[run] = (nf + int(n), nb + int(nbytes), states)
        return [RunSummary(r, nf, nb, st) for r, (nf, nb, st) in acc.items()]

    # -- runs ----------------------------------------------------------------------------------
    def record_end_of_run(self, run: int, record: Mapping[str, Any], *, source: str) -> bool:
        """Store the DAQ's end-of-run record of ``run`` (``run_status``); False if unchanged.

        A record read again (ingest's rescan) changes nothing; a new one (the run was
        continued) replaces it.  ``record`` is the JSON of :mod:`farmtools.rawdata.endofrun`.
        """
        rs = schema.run_status
        doc = dict(record)
        with self._write() as conn:
            conn.execute(self._insert_ignore(rs).values(run=run))
            old = conn.execute(select(rs.c.eor).where(rs.c.run == run)).scalar()
            if old == doc:
                return False
            conn.execute(
                update(rs)
                .where(rs.c.run == run)
                .values(
                    eor_received=now(),
                    eor_source=source,
                    eor_files=doc.get("files"),
                    eor_events=doc.get("events"),
                    eor=doc,
                )
            )
        return True

    def close_run(self, run: int, reason: str, problems: Sequence[str]) -> bool:
        """Mark ``run`` closed (compare-and-set); False when it was closed already."""
        rs = schema.run_status
        with self._write() as conn:
            conn.execute(self._insert_ignore(rs).values(run=run))
            done = conn.execute(
                update(rs)
                .where(rs.c.run == run, rs.c.closed.is_(None))
                .values(closed=now(), close_reason=reason, problems=list(problems))
            ).rowcount
        return bool(done)

    def finish_run(self, run: int, problems: Sequence[str], summary: str | None) -> bool:
        """Mark closed ``run`` finished (compare-and-set); False when it was finished already."""
        rs = schema.run_status
        with self._write() as conn:
            done = conn.execute(
                update(rs)
                .where(rs.c.run == run, rs.c.closed.is_not(None), rs.c.finished.is_(None))
                .values(finished=now(), problems=list(problems), summary=summary)
            ).rowcount
        return bool(done)

    # -- event building (6x6x6) --------------------------------------------------------------
    def record_evb_counts(self, run: int, builder: str, counts: Mapping[str, int]) -> None:
        """Replace one L2 builder's counts of ``run`` (keys: the ``evb_counts`` columns)."""
        row: dict[str, Any] = {
            c.name: int(counts.get(c.name, 0)) for c in schema.evb_counts.columns
        }
        row.update(run=run, builder=builder, updated=now())
        t = schema.evb_counts
        with self._write() as conn:
            conn.execute(delete(t).where(t.c.run == run, t.c.builder == builder))
            conn.execute(insert(t).values(**row))

    def evb_counts(self) -> dict[int, dict[str, int]]:
        """Counts per run, summed over the L2 builders (empty when no 6x6x6 run was built)."""
        t = schema.evb_counts
        keys = [c.name for c in t.columns if c.name not in ("run", "builder", "updated")]
        out: dict[int, dict[str, int]] = {}
        with self._read() as conn:
            for row in conn.execute(select(t).order_by(t.c.run)):
                acc = out.setdefault(row.run, dict.fromkeys(keys, 0))
                for k in keys:
                    acc[k] += int(getattr(row, k))
        return out

    def story(self, name: str) -> list[StoryEvent]:
        """The timeline of ``name``, oldest first (empty for an unknown name)."""
        q = (
            select(events.c.time, events.c.event, events.c.details, events.c.host, events.c.pid)
            .join(files, files.c.id == events.c.file_id)
            .where(files.c.name == name)
            .order_by(events.c.id)
        )
        with self._read() as conn:
            return [StoryEvent(t, e, d, h, p) for t, e, d, h, p in conn.execute(q)]

    def counts_by_state(self) -> dict[str, int]:
        q = select(files.c.state, func.count()).group_by(files.c.state)
        with self._read() as conn:
            return {s: int(n) for s, n in conn.execute(q)}

    def alarms(self, *, include_acknowledged: bool = False) -> list[AlarmRecord]:
        """Open alarms (and, with ``include_acknowledged``, the closed ones and how they closed)."""
        c = schema.alarm_closures
        q = (
            select(alarms, files.c.name, c.c.time.label("closed"), c.c.how, c.c.by, c.c.reason)
            .join(files, files.c.id == alarms.c.file_id, isouter=True)
            .join(c, c.c.alarm_id == alarms.c.id, isouter=True)
            .order_by(alarms.c.id)
        )
        if not include_acknowledged:
            q = q.where(alarms.c.acknowledged.is_(False))
        with self._read() as conn:
            return [
                AlarmRecord(
                    m["id"],
                    m["time"],
                    m["name"],
                    m["source"],
                    m["kind"],
                    m["message"],
                    m["acknowledged"],
                    m["closed"],
                    m["how"],
                    m["by"],
                    m["reason"],
                )
                for m in (r._mapping for r in conn.execute(q))
            ]

    def last_event_times(
        self, *names: str, run: int | None = None
    ) -> dict[str, dict[str, datetime]]:
        """``{file: {event: time of its LAST occurrence}}`` for every file (of ``run``) in one query.

        What :func:`farmtools.bookkeeping.textlogs.export` needs, without a query per file.
        """
        q = (
            select(files.c.name, events.c.event, func.max(events.c.time))
            .join(files, files.c.id == events.c.file_id)
            .where(events.c.event.in_(names))
            .group_by(files.c.name, events.c.event)
        )
        if run is not None:
            q = q.where(files.c.run == run)
        out: dict[str, dict[str, datetime]] = {}
        with self._read() as conn:
            for f, e, t in conn.execute(q):
                out.setdefault(f, {})[e] = t
        return out

    def events_between(self, name: str, *names: str) -> dict[str, datetime]:
        """Time of the LAST occurrence of each story event name of ``name`` (for log lines)."""
        q = (
            select(events.c.event, func.max(events.c.time))
            .join(files, files.c.id == events.c.file_id)
            .where(files.c.name == name, events.c.event.in_(names))
            .group_by(events.c.event)
        )
        with self._read() as conn:
            return {e: t for e, t in conn.execute(q)}
