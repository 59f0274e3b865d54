"""The ``jobs`` table: one row per submission of a raw file to a batch system.

Owns reading and writing ``farmtools.bookkeeping.schema.jobs`` through the bookkeeping's engine
(:class:`JobStore`) and the :class:`JobRecord` value.  A job row's ``state`` (:class:`JobState`)
is ``new`` (to submit once ``due``), ``submitted``, ``running``, then ``done``, ``failed`` or
``cancelled``; :data:`JOB_MACHINE` declares the allowed moves and :meth:`JobStore.set_state`
refuses any other.
The file's own state and story stay in :class:`~farmtools.bookkeeping.Bookkeeping`; this table
holds what only processing needs (batch ids, resources, accounting, failure class).

Imports SQLAlchemy and :mod:`farmtools.bookkeeping`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from farmtools.bookkeeping import Bookkeeping
from farmtools.bookkeeping.schema import jobs, now
from farmtools.statemachine import StateMachine


class JobState(StrEnum):
    """The state of one submission (``jobs.state``)."""

    #: recorded, to be submitted once ``due`` (a retry waits its cool-off here)
    NEW = "new"
    #: accepted by the batch system, not started
    SUBMITTED = "submitted"
    RUNNING = "running"
    #: ended; its exit code and accounting say how (a failed program is ``done`` with its code
    #: until the manager classifies it)
    DONE = "done"
    #: the manager gave up on this submission (refused, lost, classified as failed)
    FAILED = "failed"
    #: cancelled by an operator before it was submitted
    CANCELLED = "cancelled"


_J = JobState
#: States of a job the batch system holds (plain strings: SQL parameters).
ACTIVE = (str(_J.SUBMITTED), str(_J.RUNNING))
#: Every state a job row can be in (``jobs list --state`` accepts these and nothing else).
JOB_STATES = tuple(str(s) for s in JobState)
#: The allowed moves of a job row (docs/bookkeeping.md draws it).
JOB_MACHINE = StateMachine.of(
    "job",
    JobState,
    initial=[_J.NEW],
    moves=[
        ([_J.NEW], [_J.SUBMITTED, _J.CANCELLED]),
        ([_J.SUBMITTED], [_J.RUNNING]),
        ([_J.SUBMITTED, _J.RUNNING], [_J.DONE]),
        ([_J.NEW, _J.SUBMITTED, _J.RUNNING], [_J.FAILED]),
    ],
)


@dataclass(frozen=True)
class JobRecord:
    id: int
    file: str
    try_number: int
    backend: str
    batch_id: str | None
    name: str
    script: str | None
    stdout: str | None
    stderr: str | None
    status_file: str | None
    output: str | None
    queue: str
    memory_mb: int
    walltime_s: int
    state: JobState
    created: datetime
    due: datetime
    submitted: datetime | None
    started: datetime | None
    ended: datetime | None
    exit_code: int | None
    signal: int | None
    cpu_s: float | None
    max_rss_kb: int | None
    walltime_used_s: float | None
    node: str | None
    failure: str | None
    reason: str | None
    job_log: str | None
    #: the idempotency key of the submission under way and when it was recorded (schema 4)
    submit_key: str | None = None
    submit_intent: datetime | None = None


_NAMES = [f.name for f in fields(JobRecord)]


def _rec(row: Any) -> JobRecord:
    m = row._mapping
    return JobRecord(**{k: m[k] for k in _NAMES if k != "state"}, state=JobState(m["state"]))


class JobStore:
    """Jobs of the bookkeeping database ``bk``."""

    def __init__(self, bk: Bookkeeping) -> None:
        self.engine = bk.engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            # same execution option as the bookkeeping: BEGIN IMMEDIATE on SQLite
            conn.execution_options(farmtools_write=True)
            with conn.begin():
                yield conn

    def add(
        self,
        *,
        file: str,
        try_number: int,
        backend: str,
        name: str,
        queue: str,
        memory_mb: int,
        walltime_s: int,
        due: datetime | None = None,
    ) -> JobRecord:
        t = now()
        with self._write() as conn:
            row = conn.execute(
                insert(jobs)
                .values(
                    file=file,
                    try_number=try_number,
                    backend=backend,
                    name=name,
                    queue=queue,
                    memory_mb=memory_mb,
                    walltime_s=walltime_s,
                    state=str(JobState.NEW),
                    created=t,
                    due=due or t,
                )
                .returning(*jobs.c)
            ).one()
        return _rec(row)

    def update(self, job_id: int, **values: Any) -> None:
        """Write columns of a job other than its state (which only :meth:`set_state` moves)."""
        if "state" in values:
            raise ValueError("a job's state is moved by set_state, along JOB_MACHINE")
        with self._write() as conn:
            conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))

    def set_state(
        self, job_id: int, from_states: Sequence[str], to_state: str, **values: Any
    ) -> bool:
        """Compare-and-set of a job's state (a CLI cancel may race with the manager).

        A move that :data:`JOB_MACHINE` does not allow raises
        :class:`~farmtools.statemachine.IllegalTransition`; a job found in another state than
        ``from_states`` is left alone and False returned.
        """
        JOB_MACHINE.check(from_states, to_state)
        with self._write() as conn:
            res = conn.execute(
                update(jobs)
                .where(jobs.c.id == job_id, jobs.c.state.in_([str(s) for s in from_states]))
                .values(state=str(to_state), **values)
            )
            return bool(res.rowcount)

    def get(self, job_id: int) -> JobRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(jobs).where(jobs.c.id == job_id)).first()
        return _rec(row) if row is not None else None

    def due(self, limit: int = 100) -> list[JobRecord]:
        """New jobs whose cool-off is over, oldest first."""
        q = (
            select(jobs)
            .where(jobs.c.state == str(JobState.NEW), jobs.c.due <= now())
            .order_by(jobs.c.id)
            .limit(limit)
        )
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def next_due(self) -> datetime | None:
        """When the earliest ``new`` job is due (None when none waits): the daemon sleeps till then."""
        q = select(func.min(jobs.c.due)).where(jobs.c.state == str(JobState.NEW))
        with self.engine.connect() as conn:
            due: datetime | None = conn.execute(q).scalar()
        return due

    def active(self) -> list[JobRecord]:
        q = select(jobs).where(jobs.c.state.in_(ACTIVE)).order_by(jobs.c.id)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def of_file(self, file: str) -> list[JobRecord]:
        q = select(jobs).where(jobs.c.file == file).order_by(jobs.c.id)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def files_with_open_jobs(self) -> set[str]:
        q = select(jobs.c.file).where(jobs.c.state.in_((str(JobState.NEW), *ACTIVE))).distinct()
        with self.engine.connect() as conn:
            return {r[0] for r in conn.execute(q)}

    def list(
        self, state: str | None = None, file: str | None = None, limit: int = 200
    ) -> list[JobRecord]:
        q = select(jobs)
        if state:
            q = q.where(jobs.c.state == state)
        if file:
            q = q.where(jobs.c.file == file)
        q = q.order_by(jobs.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_rec(r) for r in conn.execute(q)]

    def counts(self) -> dict[str, int]:
        q = select(jobs.c.state, func.count()).group_by(jobs.c.state)
        with self.engine.connect() as conn:
            return {s: int(n) for s, n in conn.execute(q)}
