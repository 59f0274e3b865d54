"""Tables of the bookkeeping database (SQLAlchemy 2 Core, one :data:`metadata`).

Owns the table definitions and :data:`SCHEMA_VERSION`; imports only SQLAlchemy.  Other stages add
their tables HERE, as plain ``Table(...)`` definitions on the same :data:`metadata` (jobs,
analyses, archives...), so that ``farmtools db upgrade`` creates every table of the farm in one
place.  Adding a table or an index is backwards compatible (``create_all`` adds what is missing);
changing a column is not: bump :data:`SCHEMA_VERSION` and add a step to
``farmtools.bookkeeping.db._UPGRADES``.

Times are stored as UTC with microseconds (:class:`UTCDateTime` hands back aware datetimes on
SQLite too).  adler32 checksums are zero-padded 8-hex strings: no sign surprises in 32-bit
columns, and the leading-zero trap of string comparison cannot happen when every value is padded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    DDL,
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    event,
)

#: Version of the schema this code writes; stored in ``schema_version``.
#: 1: the tables; 2: ``events`` made append-only by triggers (UPDATE/DELETE/TRUNCATE refused);
#: 3: ``analyses`` (one row per analysed group of reconstructed files, queryable results);
#: 4: ``jobs.submit_key`` / ``jobs.submit_intent`` (exactly-once submission across a kill);
#: 5: ``dqm_checks`` / ``dqm_references`` (the monitor's check results and pinned reference runs);
#: 6: ``run_status`` and ``run_flags`` (end of run, run registry), ``analyses.partial``;
#: ``heartbeats`` (when each daemon last worked) and ``alarm_closures`` (who or what closed an
#: alarm, when and why);
#: 7: ``final_sources``, ``final_events``, ``final_filters``, ``final_files`` (6x6x6 filtering
#: and final-storage files, farmtools.final).
SCHEMA_VERSION = 7

metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(
                f"naive datetime {value!r}: bookkeeping stores UTC, pass an aware time"
            )
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


# -- the tables -------------------------------------------------------------------------------
# Add new tables of your stage below, on ``metadata``; keep each one a plain Table definition.

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True),
    Column("applied", UTCDateTime, nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("comment", Text, nullable=False, default=""),
)

files = Table(
    "files",
    metadata,
    Column("id", Integer, primary_key=True),
    # base name for raw files (run<N>-seq<M>.dat); path relative to the watch directory for
    # ignored names (non-UTF-8 bytes written as \xNN escapes)
    Column("name", Text, nullable=False, unique=True),
    Column("run", Integer, ForeignKey("runs.run"), nullable=True, index=True),
    Column("seq", Integer, nullable=True),
    Column("size", BigInteger, nullable=True),
    Column("adler32", String(8), nullable=True),
    Column("daq_write_time", UTCDateTime, nullable=True),
    Column("source_path", Text, nullable=False, default=""),
    Column("storage_path", Text, nullable=True),
    Column("state", String(32), nullable=False, index=True),
    Column("state_since", UTCDateTime, nullable=False),
    Column("tries", Integer, nullable=False, default=0),
    Column("last_error", Text, nullable=True),
    # "host:pid" (or a worker name) of whoever holds the current claim
    Column("claimed_by", String(255), nullable=True),
    # do not claim before this time (retry back-off, processing cool-off)
    Column("not_before", UTCDateTime, nullable=True),
)
Index("ix_files_run_seq", files.c.run, files.c.seq)

events = Table(
    "events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("file_id", Integer, ForeignKey("files.id"), nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Column("event", String(64), nullable=False),
    Column("details", JSON, nullable=True),
    Column("host", String(255), nullable=False, default=""),
    Column("pid", Integer, nullable=False, default=0),
)
Index("ix_events_file_time", events.c.file_id, events.c.id)

#: The story is append-only, and the database itself says so: these triggers refuse any UPDATE,
#: DELETE (or TRUNCATE) of ``events``, whoever connects.  Idempotent statements, per dialect.
APPEND_ONLY_MESSAGE = "events is append-only: the story of a file is never rewritten"
APPEND_ONLY_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": tuple(
        f"CREATE TRIGGER IF NOT EXISTS events_no_{op.lower()} BEFORE {op} ON events "
        f"BEGIN SELECT RAISE(ABORT, '{APPEND_ONLY_MESSAGE}'); END"
        for op in ("UPDATE", "DELETE")
    ),
    "postgresql": (
        "CREATE OR REPLACE FUNCTION farmtools_events_append_only() RETURNS trigger "
        f"LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION '{APPEND_ONLY_MESSAGE}'; END $$",
        "CREATE OR REPLACE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events "
        "FOR EACH ROW EXECUTE FUNCTION farmtools_events_append_only()",
        "CREATE OR REPLACE TRIGGER events_no_truncate BEFORE TRUNCATE ON events "
        "FOR EACH STATEMENT EXECUTE FUNCTION farmtools_events_append_only()",
    ),
}
for _dialect, _stmts in APPEND_ONLY_DDL.items():
    for _stmt in _stmts:
        event.listen(events, "after_create", DDL(_stmt).execute_if(dialect=_dialect))

# An alarm is a story event plus a row here that the monitor shows until someone acknowledges it.
alarms = Table(
    "alarms",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("time", UTCDateTime, nullable=False),
    Column("file_id", Integer, ForeignKey("files.id"), nullable=True, index=True),
    Column("source", String(64), nullable=False),  # the stage raising it: ingest, processing...
    Column("kind", String(64), nullable=False),  # e.g. truncated, checksum_conflict, retries
    Column("message", Text, nullable=False),
    Column("acknowledged", Boolean, nullable=False, default=False),
)


# -- processing stage (farmtools.processing): one row per batch job (one submission of a file) --
# state: new (to submit) -> submitted -> running -> done | failed | cancelled.  ``failure`` is the
# class of farmtools.processing.failures (exit, signal, oom, walltime, node, corrupt, refused...).
jobs = Table(
    "jobs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("file", Text, ForeignKey("files.name"), nullable=False, index=True),
    Column("try_number", Integer, nullable=False),
    Column("backend", String(16), nullable=False),
    Column("batch_id", String(255), nullable=True),
    Column("name", String(255), nullable=False),
    Column("script", Text, nullable=True),
    Column("stdout", Text, nullable=True),
    Column("stderr", Text, nullable=True),
    Column("status_file", Text, nullable=True),
    Column("output", Text, nullable=True),
    Column("queue", String(64), nullable=False),
    Column("memory_mb", Integer, nullable=False),
    Column("walltime_s", Integer, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("created", UTCDateTime, nullable=False),
    Column("due", UTCDateTime, nullable=False),  # submit not before (cool-off of a retry)
    Column("submitted", UTCDateTime, nullable=True),
    Column("started", UTCDateTime, nullable=True),
    Column("ended", UTCDateTime, nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("signal", Integer, nullable=True),
    Column("cpu_s", Float, nullable=True),
    Column("max_rss_kb", BigInteger, nullable=True),
    Column("walltime_used_s", Float, nullable=True),
    Column("node", String(255), nullable=True),
    Column("failure", String(32), nullable=True),
    Column("reason", Text, nullable=True),
    Column("job_log", Text, nullable=True),
    # The idempotency key of the submission under way, recorded (with its time) BEFORE the job
    # is handed to the batch system, which names the job by it: a manager killed before it
    # could record the batch id finds the job again by its key instead of submitting it twice
    # (farmtools.processing.manager, BatchSystem.find).  Schema 4.
    Column("submit_key", String(64), nullable=True),
    Column("submit_intent", UTCDateTime, nullable=True),
)


# -- analysis stage (farmtools.analysis.pipeline): one row per analysed group of files ----------
# The story's ``analysed`` events carry the same numbers as JSON, but a trend of the lifetime over
# a week cannot be a scan of every file's story: this table is what the monitor and people query
# (``SELECT run, time, lifetime_us FROM analyses ORDER BY time``).  Lifetimes are in microseconds,
# per view (0, 1) and combined, with their fit errors; NULL where the fit gave no finite value.
# ``gains`` / ``asymmetries`` map the LEM number (continuous numbering 1..12, as a string key)
# to the effective gain / the view asymmetry.  Written in the same transaction that moves the
# group's files ``reconstructed -> analysed`` (:meth:`Bookkeeping.record_analysis`).
analyses = Table(
    "analyses",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run", Integer, ForeignKey("runs.run"), nullable=False),
    Column("first_seq", Integer, nullable=False),
    Column("last_seq", Integer, nullable=False),
    Column("files", JSON, nullable=False),  # raw file names of the group, in sequence order
    Column("outputs", JSON, nullable=False),  # the ROOT files read (paths or root:// URLs)
    Column("time", UTCDateTime, nullable=False),
    Column("lifetime0_us", Float, nullable=True),
    Column("lifetime0_err_us", Float, nullable=True),
    Column("lifetime1_us", Float, nullable=True),
    Column("lifetime1_err_us", Float, nullable=True),
    Column("lifetime_us", Float, nullable=True),  # combined over the two views
    Column("lifetime_err_us", Float, nullable=True),
    Column("summary", Text, nullable=False),  # the seed-format summary file the monitor reads
    Column("gains", JSON, nullable=False),
    Column("asymmetries", JSON, nullable=False),
    # A group smaller than ``[analysis] group_size``: the remainder analysed at the run's close.
    # Schema 6.
    Column("partial", Boolean, nullable=False, default=False, server_default="0"),
)
Index("ix_analyses_run_time", analyses.c.run, analyses.c.time)


# -- what needs attention (farmtools.monitor.attention) ---------------------------------------
# One row per daemon and host, REPLACED at most every ``monitor.heartbeat_s`` by the daemon's loop
# (farmtools.bookkeeping.heartbeat): a daemon whose ``beat`` is older than
# ``monitor.daemon_silent_s`` and that did not say it stopped is silent, an alarm.  ``stopped`` is
# set by a clean exit and cleared by the next start.  ``detail`` is a short free text of the
# daemon's last pass (e.g. "3 claimed").
heartbeats = Table(
    "heartbeats",
    metadata,
    Column("daemon", String(64), primary_key=True),  # ingest, processing, monitor, evb-a...
    Column("host", String(255), primary_key=True),
    Column("pid", Integer, nullable=False),
    Column("started", UTCDateTime, nullable=False),
    Column("beat", UTCDateTime, nullable=False),
    Column("stopped", UTCDateTime, nullable=True),
    Column("detail", Text, nullable=False, default=""),
)

# How an alarm was closed: acknowledged by a person (``by`` = the Unix user) or cleared by the
# farm because its condition went away (``by`` = "farmtools", ``reason`` says what: the file was
# re-ingested, reconstructed, the daemon beats again).  The alarm's ``acknowledged`` is set in the
# same transaction, so every "open alarms" query stays what it was.  At most one row per alarm.
alarm_closures = Table(
    "alarm_closures",
    metadata,
    Column("alarm_id", Integer, ForeignKey("alarms.id"), primary_key=True, autoincrement=False),
    Column("time", UTCDateTime, nullable=False),
    Column("how", String(16), nullable=False),  # acknowledged | cleared
    Column("by", String(255), nullable=False),
    Column("reason", Text, nullable=False, default=""),
)

#: Tables that an upgrade step creates in an existing database (version -> tables), so that the
#: step, not ``create_all``, is what brings an older database up to date (and is tested as such).
TABLES_SINCE: dict[int, tuple[Table, ...]] = {3: (analyses,)}  # 5 and 6 are added below


# -- runs (farmtools.bookkeeping.ledger / registry, farmtools.processing.runclose) -------------
# One row per run that has an end-of-run record or was closed.  Ingest fills the ``eor_*``
# columns when it reads the DAQ's record ``run<N>.eor.json`` (farmtools.rawdata.endofrun); the
# processing daemon's closing step sets ``closed`` (with ``close_reason``: end_of_run | quiet and
# the ``problems`` found: gaps, missing files, checksum disagreements) and, once every file of
# the run has gone as far as it can (remainder analysed, summary written, archives planned),
# ``finished``.  A run without a row is open.
run_status = Table(
    "run_status",
    metadata,
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("eor_received", UTCDateTime, nullable=True),
    Column("eor_source", Text, nullable=True),
    Column("eor_files", Integer, nullable=True),
    Column("eor_events", BigInteger, nullable=True),
    Column("eor", JSON, nullable=True),  # the record as read
    Column("closed", UTCDateTime, nullable=True),
    Column("close_reason", String(16), nullable=True),
    Column("problems", JSON, nullable=True),  # list of one-line problems found at close/finish
    Column("finished", UTCDateTime, nullable=True),
    Column("summary", Text, nullable=True),  # the run's summary file (seed format)
)

# The run registry's history: every quality flag set, by a check (``source``: completeness,
# dqm:<check>) or by a person (``source`` person, with the Unix ``user``), and why.  Append-only
# by convention; the current flag is computed from it (farmtools.bookkeeping.registry).
run_flags = Table(
    "run_flags",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("run", Integer, nullable=False, index=True),
    Column("time", UTCDateTime, nullable=False),
    Column("flag", String(16), nullable=False),  # good | bad | unknown | auto (override removed)
    Column("source", String(64), nullable=False),
    Column("user", String(64), nullable=False, default=""),
    Column("reason", Text, nullable=False, default=""),
)
TABLES_SINCE[6] = (heartbeats, alarm_closures, run_status, run_flags)


# -- archive stage (farmtools.archive): tar archives for central storage ----------------------
# One row per archive; state: planned -> created -> transferring -> transferred -> verified
# (or failed, with last_error).  ``destination`` is where the archive lies on central storage.
archives = Table(
    "archives",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("tag", String(64), nullable=False),
    Column("runs", Text, nullable=False),  # run numbers, comma separated, ascending
    Column("size", BigInteger, nullable=True),  # bytes of the tar file (known once created)
    Column("adler32", String(8), nullable=True),  # of the whole tar file
    Column("state", String(32), nullable=False, index=True),
    Column("planned", UTCDateTime, nullable=False),
    Column("created", UTCDateTime, nullable=True),
    Column("transferred", UTCDateTime, nullable=True),
    Column("verified", UTCDateTime, nullable=True),
    Column("destination", Text, nullable=True),
    Column("last_error", Text, nullable=True),
)

# Which archive holds each raw file (a file is in at most one archive), and where its bytes are.
archive_members = Table(
    "archive_members",
    metadata,
    Column("archive", String(255), ForeignKey("archives.name"), nullable=False, index=True),
    Column("file", Text, ForeignKey("files.name"), primary_key=True),
    Column("offset", BigInteger, nullable=True),  # of the file's data in the tar (once created)
    Column("size", BigInteger, nullable=False),
    Column("adler32", String(8), nullable=True),
)


# -- event building (farmtools.evb): counts per run and L2 builder, rewritten by each builder --
# Each builder recomputes its counts from what it wrote (event files, set-aside fragments), so a
# row is replaced, never incremented: a restarted builder cannot count anything twice.
evb_counts = Table(
    "evb_counts",
    metadata,
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("builder", String(8), primary_key=True),
    Column("fragments_in0", BigInteger, nullable=False),  # fragments of L1 stream 0 read
    Column("fragments_in1", BigInteger, nullable=False),
    Column("built", BigInteger, nullable=False),  # complete events written
    Column("incomplete", BigInteger, nullable=False),  # events written without a fragment
    Column("duplicates", BigInteger, nullable=False),  # fragments set aside, by reason
    Column("mismatches", BigInteger, nullable=False),
    Column("late", BigInteger, nullable=False),
    Column("truncated", BigInteger, nullable=False),
    Column("corrupt", BigInteger, nullable=False),
    Column("pending", BigInteger, nullable=False),  # fragments waiting for a partner or a file
    Column("files", BigInteger, nullable=False),  # event files written
    Column("updated", UTCDateTime, nullable=False),
)


def now() -> datetime:
    """The current time, UTC, microseconds: the one clock of the bookkeeping."""
    return datetime.now(UTC)


# -- data-quality checks (farmtools.monitor.checks): the latest result of each check -----------
# One row per (task, item, scope, run): replaced when the check's state, reason or reference
# changes (farmtools.monitor.checkstore).  ``scope`` is "run" (the check of one run) or
# "window" (farm-wide over a recent window, e.g. the newest 500 files; ``run`` NULL).  ``state``
# is none / good / too_few / warning / error; ``details`` holds what the reason summarises
# (channel lists, the LEMs off their reference...).  Schema 5.
dqm_checks = Table(
    "dqm_checks",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("task", String(64), nullable=False),
    Column("item", String(64), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("run", Integer, nullable=True),
    Column("state", String(16), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reference", Integer, nullable=True),
    Column("details", JSON, nullable=False),
    Column("time", UTCDateTime, nullable=False),
    Index("ix_dqm_checks_run", "run", "task", "item"),
)

# Reference runs pinned with ``farmtools monitor reference SPEC RUN``; ``spec`` is
# "task/item", "task" or "*" (the most specific wins, before monitor.references of farm.toml).
dqm_references = Table(
    "dqm_references",
    metadata,
    Column("spec", String(140), primary_key=True),
    Column("run", Integer, nullable=False),
    Column("pinned", UTCDateTime, nullable=False),
)

TABLES_SINCE[5] = (dqm_checks, dqm_references)


# -- 6x6x6 filtering and final-storage files (farmtools.final, docs/final.md); schema 7 ---------
# One row per raw L2 event file classified: how many events it held (the proof that every event
# of it has a row in ``final_events``) and its size and adler32 then.
final_sources = Table(
    "final_sources",
    metadata,
    Column("file", Text, ForeignKey("files.name"), primary_key=True),
    Column("run", Integer, nullable=False, index=True),
    Column("events", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("adler32", String(8), nullable=True),
    Column("classified", UTCDateTime, nullable=False),
)

# One row per event of a classified raw file: its class (from the header, the light and a cheap
# charge scan), the filter's decision (kept | prescaled_out | dropped, NULL until filtered) under
# ``policy_version``, and the final file that holds it once packed.
final_events = Table(
    "final_events",
    metadata,
    Column("file", Text, ForeignKey("final_sources.file"), primary_key=True),
    Column("idx", Integer, primary_key=True, autoincrement=False),  # index in the raw file
    Column("run", Integer, nullable=False),
    Column("trigger", BigInteger, nullable=False),
    Column("event", BigInteger, nullable=False),
    Column("trigger_type", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),  # bytes in the raw file
    Column("klass", String(16), nullable=False),
    Column("reason", Text, nullable=False, default=""),
    Column("decision", String(16), nullable=True),
    Column("policy_version", String(64), nullable=True),
    Column("final_file", String(255), nullable=True, index=True),
    Index("ix_final_events_run", "run", "trigger"),
)

# One row per filtered run: the policy applied (as configured), its version and the counts of
# every decision per class, replaced when the run is filtered again.
final_filters = Table(
    "final_filters",
    metadata,
    Column("run", Integer, primary_key=True, autoincrement=False),
    Column("policy_version", String(64), nullable=False),
    Column("policy", JSON, nullable=False),
    Column("counts", JSON, nullable=False),  # {class: {kept, prescaled_out, dropped}}
    Column("filtered", UTCDateTime, nullable=False),
)

# One row per final-storage file: written -> transferring -> transferred -> verified (or
# failed, with last_error); like an archive (farmtools.final.catalog.FINAL_MACHINE).
final_files = Table(
    "final_files",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("run", Integer, nullable=False, index=True),
    Column("stream", String(16), nullable=False),
    Column("events", Integer, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("adler32", String(8), nullable=False),
    Column("policy_version", String(64), nullable=False),
    Column("state", String(32), nullable=False, index=True),
    Column("written", UTCDateTime, nullable=False),
    Column("transferred", UTCDateTime, nullable=True),
    Column("verified", UTCDateTime, nullable=True),
    Column("destination", Text, nullable=True),
    Column("last_error", Text, nullable=True),
)
TABLES_SINCE[7] = (final_sources, final_events, final_filters, final_files)
