"""Read-only queries of the bookkeeping database for the data-flow plots, the alarms and /metrics.

Owns :class:`FarmQueries`.  Every query a page request runs is bounded by an index (the latest
runs through ``runs``' primary key and ``ix_files_run_seq``; the newest files through the primary
key; active states through ``ix_files_state``), so a request costs the same with a year of data
(3 million files) as with a day.  Farm-wide totals need full scans (files per state, bytes
stored, jobs done): :class:`Totals` recomputes them in a background thread every
``monitor.totals_s`` seconds and requests read the last snapshot.

Imports SQLAlchemy, :mod:`farmtools.bookkeeping` (schema, states, the Bookkeeping engine) only;
writes nothing.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, func, select

from farmtools.bookkeeping.schema import (
    alarms,
    archives,
    evb_counts,
    events,
    files,
    heartbeats,
    jobs,
    now,
    runs,
)
from farmtools.bookkeeping.states import CHAIN, Event, FileState

#: States a file passes through on its way to "analysed": a file sitting in one too long is stuck.
ACTIVE_STATES: tuple[str, ...] = CHAIN[: CHAIN.index(FileState.RECONSTRUCTED)]
#: States of a file that is on the farm storage (ingested).
INGESTED_STATES: tuple[str, ...] = (*CHAIN[CHAIN.index(FileState.STORED) :], FileState.FAILED)
#: States of a file that processing or ingest gave up on: a person retries it.
FAILED_STATES: tuple[str, ...] = (FileState.FAILED, FileState.QUARANTINED)
#: Job states that are waiting in a queue (ours or the batch system's).
QUEUED_JOB_STATES = ("new", "submitted")


@dataclass(frozen=True)
class RunFlow:
    """Files and bytes of one run, per state."""

    run: int
    files: int
    bytes: int
    states: dict[str, int]


@dataclass(frozen=True)
class Latency:
    """Transfer of one recent file: written by the DAQ -> verified on the farm storage."""

    name: str
    written: datetime
    verified: datetime

    @property
    def seconds(self) -> float:
        return (self.verified - self.written).total_seconds()


@dataclass(frozen=True)
class StuckFile:
    name: str
    state: str
    since: datetime
    last_error: str | None


@dataclass
class TotalsSnapshot:
    """Farm-wide counts at ``taken`` (None before the first computation ended)."""

    taken: datetime | None = None
    files_by_state: dict[str, int] = field(default_factory=dict)
    bytes_by_state: dict[str, int] = field(default_factory=dict)
    jobs_by_state: dict[str, int] = field(default_factory=dict)
    #: failed job attempts per failure class, and the distinct files they were attempts of
    failures_by_class: dict[str, int] = field(default_factory=dict)
    failed_files_by_class: dict[str, int] = field(default_factory=dict)
    #: distinct files with at least one failed attempt (retried or given up)
    files_with_failures: int = 0
    archives_by_state: dict[str, tuple[int, int]] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def files_ingested(self) -> int:
        return sum(self.files_by_state.get(s, 0) for s in INGESTED_STATES)

    @property
    def bytes_ingested(self) -> int:
        return sum(self.bytes_by_state.get(s, 0) for s in INGESTED_STATES)


class FarmQueries:
    """Bounded read-only queries on ``engine`` (the bookkeeping's)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _rows(self, q: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(q))

    def ping(self) -> int:
        """A trivial round trip (the benchmark's baseline)."""
        with self.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT 1").scalar_one())

    def run_numbers(self, limit: int = 2000) -> list[int]:
        """Known runs, newest first."""
        return [
            r for (r,) in self._rows(select(runs.c.run).order_by(runs.c.run.desc()).limit(limit))
        ]

    def latest_runs_flow(self, n: int) -> list[RunFlow]:
        """Files/bytes per state of the ``n`` latest runs, oldest first."""
        nums = self.run_numbers(n)
        if not nums:
            return []
        q = (
            select(
                files.c.run, files.c.state, func.count(), func.coalesce(func.sum(files.c.size), 0)
            )
            .where(files.c.run >= min(nums), files.c.run <= max(nums))
            .group_by(files.c.run, files.c.state)
        )
        acc: dict[int, dict[str, tuple[int, int]]] = {r: {} for r in nums}
        for run, state, n_files, n_bytes in self._rows(q):
            acc.setdefault(run, {})[state] = (int(n_files), int(n_bytes))
        return [
            RunFlow(
                run,
                sum(v[0] for v in st.values()),
                sum(v[1] for v in st.values()),
                {k: v[0] for k, v in st.items()},
            )
            for run, st in sorted(acc.items())
        ]

    def recent_latencies(self, n: int = 500) -> list[Latency]:
        """DAQ write -> verified on storage, for the newest ``n`` files that were verified."""
        recent = select(files.c.id).order_by(files.c.id.desc()).limit(n).scalar_subquery()
        q = (
            select(files.c.name, events.c.event, func.max(events.c.time))
            .join(files, files.c.id == events.c.file_id)
            .where(
                events.c.file_id.in_(recent),
                events.c.event.in_((Event.WRITTEN, Event.VERIFIED, Event.ALREADY_STORED)),
            )
            .group_by(files.c.name, events.c.event)
        )
        acc: dict[str, dict[str, datetime]] = {}
        for name, ev, t in self._rows(q):
            acc.setdefault(name, {})[ev] = t
        out = []
        for name, evs in acc.items():
            done = evs.get(Event.VERIFIED) or evs.get(Event.ALREADY_STORED)
            if Event.WRITTEN in evs and done is not None:
                out.append(Latency(name, evs[Event.WRITTEN], done))
        out.sort(key=lambda lat: lat.verified)
        return out

    def active_counts(self) -> dict[str, int]:
        """Files in each state that is still on its way (small sets, read through the index)."""
        q = (
            select(files.c.state, func.count())
            .where(files.c.state.in_(ACTIVE_STATES))
            .group_by(files.c.state)
        )
        counts = {str(s): 0 for s in ACTIVE_STATES}
        counts.update({s: int(n) for s, n in self._rows(q)})
        return counts

    def active_jobs(self) -> dict[str, int]:
        """Jobs new/submitted/running (the queues), through the state index."""
        q = (
            select(jobs.c.state, func.count())
            .where(jobs.c.state.in_((*QUEUED_JOB_STATES, "running")))
            .group_by(jobs.c.state)
        )
        counts = {"new": 0, "submitted": 0, "running": 0}
        counts.update({s: int(n) for s, n in self._rows(q)})
        return counts

    def stuck_files(self, older_than_s: float, limit: int = 100) -> tuple[int, list[StuckFile]]:
        """Files in an active state for more than ``older_than_s``: (how many, the oldest ones)."""
        cut = now() - timedelta(seconds=older_than_s)
        # The ids come from the state index (covering: no table access); asked directly,
        # SQLite's planner, which knows only the average rows per state (3 M files over 8
        # states after ANALYZE) and not that the active ones are a few hundred, scans the
        # whole table: 2-4 s with a year of files instead of ~5 ms.
        active = select(files.c.id).where(files.c.state.in_(ACTIVE_STATES))
        return self._oldest(and_(files.c.id.in_(active), files.c.state_since < cut), limit)

    def failed_files(self, limit: int = 100) -> tuple[int, list[StuckFile]]:
        """Files parked as failed or quarantined: (how many, the oldest ones), by the state index."""
        return self._oldest(files.c.state.in_(FAILED_STATES), limit)

    def runs_with(self, *, stuck_s: float | None = None, failed: bool = False) -> set[int]:
        """Runs with a file stuck longer than ``stuck_s`` (as :meth:`stuck_files`), or with a
        failed or quarantined one: through the state index."""
        if stuck_s is not None:
            cut = now() - timedelta(seconds=stuck_s)
            active = select(files.c.id).where(files.c.state.in_(ACTIVE_STATES))
            cond = and_(files.c.id.in_(active), files.c.state_since < cut)
        else:
            cond = files.c.state.in_(FAILED_STATES) if failed else files.c.id.is_(None)
        q = select(files.c.run).where(cond).distinct()
        return {r for (r,) in self._rows(q) if r is not None}

    def _oldest(self, cond: Any, limit: int) -> tuple[int, list[StuckFile]]:
        """How many files match ``cond``, and the ``limit`` longest in their state."""
        with self.engine.connect() as conn:
            total = int(
                conn.execute(select(func.count()).select_from(files).where(cond)).scalar_one()
            )
            rows = conn.execute(
                select(files.c.name, files.c.state, files.c.state_since, files.c.last_error)
                .where(cond)
                .order_by(files.c.state_since)
                .limit(limit)
            ).all()
        return total, [StuckFile(n, s, t, e) for n, s, t, e in rows]

    def failed_in_window(self, window: int) -> tuple[int, int, list[str]]:
        """Among the newest ``window`` files: (failed files, failed job attempts, the first names).

        A file whose reconstruction was retried 7 times before giving up is ONE failed file (and
        7 attempts); a file that failed once and then succeeded is no failed file.
        """
        recent = select(files.c.id).order_by(files.c.id.desc()).limit(window).scalar_subquery()
        failed = (
            select(files.c.name)
            .where(files.c.id.in_(recent), files.c.state == FileState.FAILED)
            .order_by(files.c.id.desc())
        )
        with self.engine.connect() as conn:
            names = [n for (n,) in conn.execute(failed)]
            attempts = 0
            if names:
                attempts = int(
                    conn.execute(
                        select(func.count())
                        .select_from(jobs)
                        .where(jobs.c.file.in_(names), jobs.c.state == "failed")
                    ).scalar_one()
                )
        return len(names), attempts, names[:20]

    def open_alarm_ids_of(self, source: str, kind: str) -> list[int]:
        """Ids of the unacknowledged alarms of ``source`` and ``kind``."""
        q = select(alarms.c.id).where(
            alarms.c.source == source, alarms.c.kind == kind, alarms.c.acknowledged.is_(False)
        )
        return [i for (i,) in self._rows(q)]

    def open_alarms(self, limit: int = 50) -> list[dict[str, Any]]:
        """Unacknowledged alarms, newest first."""
        q = (
            select(alarms, files.c.name)
            .join(files, files.c.id == alarms.c.file_id, isouter=True)
            .where(alarms.c.acknowledged.is_(False))
            .order_by(alarms.c.id.desc())
            .limit(limit)
        )
        return [
            {
                "id": m["id"],
                "time": m["time"].isoformat(),
                "file": m["name"],
                "source": m["source"],
                "kind": m["kind"],
                "message": m["message"],
            }
            for m in (r._mapping for r in self._rows(q))
        ]

    def alarms_after(self, alarm_id: int, *, not_from: str) -> list[dict[str, Any]]:
        """Alarms with an id above ``alarm_id`` raised by any source but ``not_from``, oldest
        first: what the other stages raised since the monitor last looked."""
        q = (
            select(alarms, files.c.name)
            .join(files, files.c.id == alarms.c.file_id, isouter=True)
            .where(alarms.c.id > alarm_id, alarms.c.source != not_from)
            .order_by(alarms.c.id)
        )
        return [dict(r._mapping) for r in self._rows(q)]

    def last_alarm_id(self) -> int:
        """The newest alarm's id (0 without alarms)."""
        return int(self._rows(select(func.coalesce(func.max(alarms.c.id), 0)))[0][0])

    def running_daemons(self) -> list[tuple[str, str, datetime]]:
        """(daemon, host, last beat) of every daemon that did not say it stopped."""
        h = heartbeats
        q = select(h.c.daemon, h.c.host, h.c.beat).where(h.c.stopped.is_(None))
        return [(d, host, t) for d, host, t in self._rows(q.order_by(h.c.daemon, h.c.host))]

    def open_alarm_ids(self, source: str) -> dict[str, int]:
        """``{kind: id}`` of the open alarms of ``source`` (the newest of each kind)."""
        q = (
            select(alarms.c.kind, alarms.c.id)
            .where(alarms.c.source == source, alarms.c.acknowledged.is_(False))
            .order_by(alarms.c.id)
        )
        return {k: i for k, i in self._rows(q)}

    def open_alarm_kinds(self, source: str) -> set[str]:
        q = select(alarms.c.kind).where(alarms.c.source == source, alarms.c.acknowledged.is_(False))
        return {k for (k,) in self._rows(q)}

    def evb_counts(self, runs_shown: int = 20) -> dict[int, dict[str, int]]:
        """6x6x6 event-building counts of the newest runs, summed over the L2 builders."""
        newest = (
            select(evb_counts.c.run).distinct().order_by(evb_counts.c.run.desc()).limit(runs_shown)
        )
        q = select(evb_counts).where(evb_counts.c.run.in_(newest.scalar_subquery()))
        out: dict[int, dict[str, int]] = {}
        skip = ("run", "builder", "updated")
        for row in self._rows(q):
            m = row._mapping
            acc = out.setdefault(m["run"], {})
            for k, v in m.items():
                if k not in skip:
                    acc[k] = acc.get(k, 0) + int(v)
        return out

    # -- full scans: only for Totals ------------------------------------------------------------
    def totals(self) -> TotalsSnapshot:
        t0 = time.perf_counter()
        snap = TotalsSnapshot()
        with self.engine.connect() as conn:
            for state, n, b in conn.execute(
                select(
                    files.c.state, func.count(), func.coalesce(func.sum(files.c.size), 0)
                ).group_by(files.c.state)
            ):
                snap.files_by_state[state] = int(n)
                snap.bytes_by_state[state] = int(b)
            for state, n in conn.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)):
                snap.jobs_by_state[state] = int(n)
            # one scan for attempts and files: 7 failed attempts of one file are 1 failed file
            failed: set[str] = set()
            for failure, file, n in conn.execute(
                select(jobs.c.failure, jobs.c.file, func.count())
                .where(jobs.c.failure.is_not(None))
                .group_by(jobs.c.failure, jobs.c.file)
            ):
                snap.failures_by_class[failure] = snap.failures_by_class.get(failure, 0) + int(n)
                snap.failed_files_by_class[failure] = snap.failed_files_by_class.get(failure, 0) + 1
                failed.add(file)
            snap.files_with_failures = len(failed)
            for state, n, b in conn.execute(
                select(
                    archives.c.state, func.count(), func.coalesce(func.sum(archives.c.size), 0)
                ).group_by(archives.c.state)
            ):
                snap.archives_by_state[state] = (int(n), int(b))
        snap.taken = now()
        snap.seconds = time.perf_counter() - t0
        return snap


class Totals:
    """The latest :class:`TotalsSnapshot`, recomputed every ``period`` s by a daemon thread."""

    def __init__(self, queries: FarmQueries, period: float) -> None:
        self.queries = queries
        self.period = period
        self.snapshot = TotalsSnapshot()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def refresh(self) -> TotalsSnapshot:
        try:
            self.snapshot = self.queries.totals()
            self.error = None
        except Exception as exc:  # a database that is away must not stop the page
            self.error = f"{type(exc).__name__}: {exc}"
        return self.snapshot

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="monitor-totals", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.refresh()
            self._stop.wait(self.period)
